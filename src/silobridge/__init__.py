"""silobridge: large and small models collaborating across data and model silos, every trade-off measured."""
__version__ = "0.1.0"
