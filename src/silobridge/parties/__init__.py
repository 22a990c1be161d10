from silobridge.parties.data_party import DataParty, Link
from silobridge.parties.model_party import ModelParty, ModelServer

__all__ = ["DataParty", "Link", "ModelParty", "ModelServer"]
