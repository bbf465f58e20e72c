"""The domain's ports: what the pipeline and the window need of a card printer, of a
card-management system and of a key service (keys.py), declared here and implemented by
adapters (the HiTi driver's adapter, the reference HTTP CMS client, a province's own CMS
client; the PSAM, HSM and test-only key services), which the composition root picks by name
from the configuration (cardstation/registries.py)."""
