from silobridge.parties.data_party import DataParty
from silobridge.parties.model_party import ModelParty

__all__ = ["DataParty", "ModelParty"]
