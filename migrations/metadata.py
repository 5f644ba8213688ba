"""Every table the migrations manage: import each domain's models here."""

from sqlalchemy import MetaData

import catalogue.models
import infra.outbox
import leaderboards.models
import partners.models
from infra.db import metadata

MODEL_MODULES = (partners.models, infra.outbox, catalogue.models, leaderboards.models)


def target_metadata() -> MetaData:
    return metadata
