"""Card-printer adapters: each implements personalization/ports/printer.py for one model and
is named in cardstation/registries.py PRINTER_MODELS."""
