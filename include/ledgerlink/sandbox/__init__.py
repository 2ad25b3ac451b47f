"""The sandbox: local servers that speak the Qonto, Square and QuickBooks Online APIs from a
fixture directory, a deterministic fixture generator, and an SMTP server playing QuickBooks'
email-in address.

Public surface: :func:`generate_fixtures`, :func:`load_fixtures`, :func:`run_sandbox`,
:class:`SandboxPorts`, :class:`SandboxOptions`, :class:`SandboxEndpoints`.
"""

from __future__ import annotations

from ledgerlink.sandbox.fixtures import Fixtures, load_fixtures
from ledgerlink.sandbox.generator import generate_fixtures

__all__ = ["Fixtures", "generate_fixtures", "load_fixtures"]
