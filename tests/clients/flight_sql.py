"""A Flight SQL client for the server tests: the ADBC driver, as a responder's notebook
uses it. Prints one JSON document; errors are data, not exceptions.

    flight_sql.py query URI AUTH SQL [CA]     AUTH: bearer:TOKEN | basic:USER:TOKEN | none;
                                              CA: a PEM file to trust (grpc+tls://)
    flight_sql.py objects URI AUTH            the tables and views the server lists
    flight_sql.py load URI AUTH CLIENTS SECONDS   mixed queries from CLIENTS threads
"""
import json
import sys
import threading
import time
import warnings

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

warnings.simplefilter("ignore")


def connect(uri, auth, ca=None):
    kind, _, rest = auth.partition(":")
    if kind == "bearer":
        kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {rest}"}
    elif kind == "basic":
        user, _, token = rest.partition(":")
        kwargs = {"username": user, "password": token}
    else:
        kwargs = {}
    if ca:
        with open(ca) as f:
            kwargs[DatabaseOptions.TLS_ROOT_CERTS.value] = f.read()
    return flight_sql.connect(uri, db_kwargs=kwargs, autocommit=True)


def first_line(e):
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def query(uri, auth, sql, ca=None):
    try:
        with connect(uri, auth, ca) as conn, conn.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            return {"ok": True, "columns": table.column_names,
                    "rows": [list(r.values()) for r in table.to_pylist()]}
    except Exception as e:  # noqa: BLE001 - every failure is reported
        return {"ok": False, "error": first_line(e)}


def objects(uri, auth):
    try:
        with connect(uri, auth) as conn:
            found = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            names = [t["table_name"] for c in found for s in c["catalog_db_schemas"] or []
                     for t in s["db_schema_tables"] or []]
            return {"ok": True, "tables": sorted(names)}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": first_line(e)}


MIXED = [
    "SELECT verb, count(*) AS n FROM k8s_audit GROUP BY verb ORDER BY n DESC",
    "SELECT * FROM events ORDER BY event_time LIMIT 200",
    "SELECT user_name, count(DISTINCT src_ip) FROM k8s_audit GROUP BY user_name",
    "SELECT e.pod, count(*) FROM runtime_events e JOIN network_flows f ON e.pod = f.pod GROUP BY e.pod",
    "SELECT time_dt, actor['user']['name'] AS who, api.operation FROM ocsf_api_activity LIMIT 100",
    "SELECT count(*) FROM network_flows WHERE cidr_contains('10.0.0.0/8', src_ip)",
]


def load(uri, auth, clients, seconds):
    end = time.monotonic() + seconds
    done, errors, lock = [0], [], threading.Lock()

    def client(i):
        with connect(uri, auth) as conn:
            n = i
            while time.monotonic() < end:
                sql = MIXED[n % len(MIXED)]
                n += 1
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        cur.fetch_arrow_table()
                    with lock:
                        done[0] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(first_line(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"ok": not errors, "queries": done[0], "errors": errors[:5]}


def main(argv):
    mode, uri, auth = argv[1], argv[2], argv[3]
    if mode == "query":
        out = query(uri, auth, argv[4], argv[5] if len(argv) > 5 else None)
    elif mode == "objects":
        out = objects(uri, auth)
    elif mode == "load":
        out = load(uri, auth, int(argv[4]), float(argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(sys.argv)
