"""``python -m ledgerlink.webhooks [--host H] [--port P]``: the receiver on its own."""

from __future__ import annotations

import argparse

import uvicorn

from ledgerlink.webhooks.app import create_webhook_app


def main() -> None:
    parser = argparse.ArgumentParser(description="ledgerlink's webhook receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    arguments = parser.parse_args()
    uvicorn.run(create_webhook_app(), host=arguments.host, port=arguments.port)


if __name__ == "__main__":
    main()
