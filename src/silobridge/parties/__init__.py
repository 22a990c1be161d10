from silobridge.parties.data_party import DataParty, Link
from silobridge.parties.model_party import ModelParty
from silobridge.parties.model_server import ModelServer

__all__ = ["DataParty", "Link", "ModelParty", "ModelServer"]
