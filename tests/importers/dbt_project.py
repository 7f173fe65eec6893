"""A tiny dbt project (a seed, a model, four data tests) written into a directory, and
the dbt command that runs it against a PostgreSQL reached by its Unix socket. Used by
the live dbt test and to make the committed sample (see samples/ORIGIN.md)."""

from __future__ import annotations

from pathlib import Path

import psycopg

FILES = {
    "dbt_project.yml": """\
name: shop
version: "1.0.0"
profile: shop
seed-paths: [seeds]
model-paths: [models]
""",
    "seeds/orders.csv": """\
id,customer,status,amount
1,ada,shipped,10
2,bob,shipped,25
3,cy,lost,7
3,dee,placed,12
""",
    "models/orders_clean.sql": "select id, customer, status, amount from {{ ref('orders') }}\n",
    "models/schema.yml": """\
version: 2
models:
  - name: orders_clean
    columns:
      - name: id
        data_tests:
          - not_null
          - unique
      - name: status
        data_tests:
          - accepted_values:
              arguments:
                values: [placed, shipped]
              config:
                severity: warn
      - name: amount
        data_tests:
          - not_null:
              config:
                severity: warn
""",
}


def write_project(root: Path, conninfo: str, schema: str) -> Path:
    """The project and its profiles.yml (host = the socket directory) under root."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    for name, body in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    (root / "profiles.yml").write_text(f"""\
shop:
  target: ci
  outputs:
    ci:
      type: postgres
      host: "{params.get('host', 'localhost')}"
      port: {params.get('port', 5432)}
      user: "{params.get('user', 'postgres')}"
      password: ""
      dbname: "{params.get('dbname', 'postgres')}"
      schema: {schema}
      threads: 1
""")
    return root


def command(dbt: str | Path, root: Path) -> list[str]:
    """`dbt build` (seed, model, tests) with the project's own profiles.yml."""
    return [str(dbt), "build", "--project-dir", str(root), "--profiles-dir", str(root),
            "--target-path", str(root / "target"), "--no-use-colors", "--no-send-anonymous-usage-stats"]
