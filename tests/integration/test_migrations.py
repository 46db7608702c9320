import pytest
import sqlalchemy as sa

from portal.app import create_app
from portal.db import NotMigratedError, current_revision, head_revision, make_engine


def test_app_refuses_an_unmigrated_database(tmp_path, settings):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(NotMigratedError, match="portal migrate"):
        create_app(settings, engine)


def test_migrations_reach_head_and_create_the_tables(engine):
    assert current_revision(engine) == head_revision(str(engine.url))
    tables = set(sa.inspect(engine).get_table_names())
    assert {"orders", "order_line", "return", "return_line", "return_event", "refund", "export_declaration"} <= tables
