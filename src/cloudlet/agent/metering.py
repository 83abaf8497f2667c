"""What the agent's usage costs, exactly: model tokens and tool calls priced by the operator's settings in cents
(fractions included), summed per conversation in micro-cents (millionths of a cent, rounded up per step), and
debited from the project's agent credit pool in whole cents: the whole cents due after each step, the fraction
left at the end of each chat request rounded up. So the pool pays exactly the priced usage of a request to the
cent above, never twice (each debit has its idempotency key)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from cloudlet.config import Settings

MICRO = 1_000_000  # micro-cents in a cent


def _micro(cents: Decimal) -> int:
    return int((cents * MICRO).to_integral_value(rounding=ROUND_CEILING))


def model_cost(settings: Settings, input_tokens: int, output_tokens: int) -> int:
    """A model call's cost in micro-cents."""
    return _micro((Decimal(input_tokens) * settings.agent_price_input_per_1k_cents
                   + Decimal(output_tokens) * settings.agent_price_output_per_1k_cents) / 1000)


def tool_cost(settings: Settings) -> int:
    """A tool call's cost in micro-cents."""
    return _micro(settings.agent_price_tool_call_cents)


def due_cents(cost_microcents: int, charged_cents: int, *, final: bool) -> int:
    """Whole cents owed now: the whole cents of the cost not paid yet; at a request's end, its fraction too."""
    whole = -(-cost_microcents // MICRO) if final else cost_microcents // MICRO
    return max(0, whole - charged_cents)
