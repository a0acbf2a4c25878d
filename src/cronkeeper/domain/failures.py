"""The closed failure-reason taxonomy, each with the one line the CLI and the UI show."""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECTION = "connection"
    TLS = "tls"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    SSRF_BLOCKED = "ssrf_blocked"
    BLOCKED_HOSTNAME = "blocked_hostname"
    BLOCKED_IP = "blocked_ip"
    DESTINATION_UNRESOLVABLE = "destination_unresolvable"
    CREDENTIAL = "credential"
    PROTOCOL = "protocol"
    EXIT_CODE = "exit_code"
    SIGNAL = "signal"
    EXCEPTION = "exception"
    MAX_RUNTIME = "max_runtime"
    TOO_FAST = "too_fast"
    NODE_LOST = "node_lost"
    MISSED = "missed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


EXPLANATIONS: dict[FailureReason, str] = {
    FailureReason.TIMEOUT: "The target did not answer within the job's timeout.",
    FailureReason.DNS: "The target's host name could not be resolved (DNS lookup failed).",
    FailureReason.CONNECTION: "The connection to the target was refused, reset or dropped.",
    FailureReason.TLS: "The TLS handshake failed (certificate invalid, expired or mismatched).",
    FailureReason.HTTP_4XX: "The target answered with a 4xx client error: it rejected the request.",
    FailureReason.HTTP_5XX: "The target answered with a 5xx server error.",
    FailureReason.SSRF_BLOCKED: (
        "The target resolves to a private, loopback, link-local or metadata address, "
        "which is blocked unless allow-listed."
    ),
    FailureReason.BLOCKED_HOSTNAME: "The target host name is on the configured deny list.",
    FailureReason.BLOCKED_IP: "The target address is on the configured deny list.",
    FailureReason.DESTINATION_UNRESOLVABLE: (
        "The target URL has no usable destination (no host, or no address to connect to)."
    ),
    FailureReason.CREDENTIAL: "The target refused the credentials (HTTP 401 or 403).",
    FailureReason.PROTOCOL: "The target broke the protocol (malformed or unexpected response).",
    FailureReason.EXIT_CODE: "The command exited with a non-zero exit code.",
    FailureReason.SIGNAL: "The command was killed by a signal.",
    FailureReason.EXCEPTION: "The Python callable raised an exception.",
    FailureReason.MAX_RUNTIME: "The run exceeded its max_runtime and was stopped.",
    FailureReason.TOO_FAST: "The run finished faster than its min_runtime, which suggests it "
    "did not do its work.",
    FailureReason.NODE_LOST: "The process running this job stopped renewing its lease "
    "(crashed or lost); the run was failed and retried per policy.",
    FailureReason.MISSED: "The run never started: no ping arrived in time, or the slot "
    "could not be fired.",
    FailureReason.REJECTED: "An approver rejected the workflow at an approval gate.",
    FailureReason.UNKNOWN: "The run failed for a reason Cronkeeper could not classify.",
}


def explain(reason: FailureReason | str) -> str:
    """The one-line human explanation of a failure reason (unknown strings map to UNKNOWN)."""
    try:
        return EXPLANATIONS[FailureReason(reason)]
    except ValueError:
        return EXPLANATIONS[FailureReason.UNKNOWN]
