"""The sandbox: local servers that speak the Qonto, Square and QuickBooks Online APIs from a
fixture directory, a deterministic fixture generator, and an SMTP server playing QuickBooks'
email-in address.

Public surface: :func:`generate_fixtures`, :func:`load_fixtures`, :func:`run_sandbox` with
:class:`SandboxPorts`, :class:`SandboxOptions` and the :class:`SandboxEndpoints` it yields, and the
per-service app factories for embedding one server elsewhere. Every API server takes injected
faults per endpoint (:class:`FaultInjector` on :attr:`SandboxOptions.faults`, or ``POST
/_sandbox/faults`` on a running server) and serves its source's OAuth endpoints.
"""

from __future__ import annotations

from ledgerlink.sandbox.common import SandboxOptions
from ledgerlink.sandbox.email_in import AcceptancePolicy, start_email_in
from ledgerlink.sandbox.faults import Fault, FaultInjector
from ledgerlink.sandbox.fixtures import Fixtures, load_fixtures
from ledgerlink.sandbox.generator import generate_fixtures
from ledgerlink.sandbox.qonto import create_qonto_app
from ledgerlink.sandbox.quickbooks import create_quickbooks_app
from ledgerlink.sandbox.services import SandboxEndpoints, SandboxPorts, run_sandbox
from ledgerlink.sandbox.square import create_square_app

__all__ = [
    "AcceptancePolicy",
    "Fault",
    "FaultInjector",
    "Fixtures",
    "SandboxEndpoints",
    "SandboxOptions",
    "SandboxPorts",
    "create_qonto_app",
    "create_quickbooks_app",
    "create_square_app",
    "generate_fixtures",
    "load_fixtures",
    "run_sandbox",
    "start_email_in",
]
