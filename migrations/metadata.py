"""Every table the migrations manage: import each domain's models here."""

from sqlalchemy import MetaData

import catalogue.models
import earnings.models
import infra.outbox
import partners.models
from infra.db import metadata

MODEL_MODULES = (partners.models, infra.outbox, catalogue.models, earnings.models)


def target_metadata() -> MetaData:
    return metadata
