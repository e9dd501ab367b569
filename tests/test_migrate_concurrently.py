"""Migrations from an empty database on both backends, with two machines starting at the
same moment: one applies everything, the other waits for it and finds nothing to do."""
import subprocess

import pytest

from tests.databases import backends, fresh_database, query
from tests.live_server import CERTAPI

SCORE_COLUMNS = [("assessment_attempt", "score"), ("certification", "passing_score"),
                 ("enrollment", "assessment_best_score"), ("enrollment", "progress_percentage")]


@pytest.mark.parametrize("kind", backends())
def test_two_simultaneous_migrations_of_an_empty_database(kind, tmp_path):
    with fresh_database(kind, tmp_path, "migrate") as url:
        runs = [subprocess.Popen([CERTAPI, "migrate", "--database-url", url], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
        results = sorted((run.wait(60), *run.communicate()) for run in runs)
        assert [code for code, _, _ in results] == [0, 0], results
        outputs = sorted(out for _, out, _ in results)
        assert outputs[0].startswith("applied: 0001_initial, 0002_"), outputs
        assert outputs[1] == "database is up to date\n", outputs
        applied = query(url, "SELECT name FROM schema_migration ORDER BY name")
        assert len(applied) == len({name for (name,) in applied}) >= 2

        if kind == "postgresql":
            # Scores are 8-byte floats: a 4-byte REAL returned 72.3 as 72.3000030517578.
            types = query(url, "SELECT table_name, column_name, data_type "
                               "FROM information_schema.columns WHERE table_schema = 'public' "
                               "AND data_type IN "
                               "('real', 'double precision') ORDER BY table_name, column_name")
            assert {(table, column) for table, column, _ in types} >= set(SCORE_COLUMNS)
            assert {data_type for _, _, data_type in types} == {"double precision"}, types
