"""The backend for gunicorn, built from ``SLT_*`` variables: ``gunicorn -w 2 bench.wsgi:app``.

Each gunicorn worker imports this module and builds its own app (no ``--preload``), so each has
its own store connections and its own chain worker threads; the store's ``chain-worker`` lease
lets only one of them send transactions and follow events at a time.
"""

from backend import create_app

app = create_app()
