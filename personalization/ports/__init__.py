"""The domain's ports: what the pipeline and the window need of a card printer and of a card-
management system, declared here and implemented by adapters (the HiTi driver's adapter, the
reference HTTP CMS client, a province's own CMS client), which the composition root picks by
name from the configuration (cardstation/registries.py)."""
