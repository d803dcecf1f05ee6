"""Privacy attacks (PL) and reconstruction attacks (RR) on released features, chosen by name.

An attack is a :class:`~lifeveil.bench.contracts.Attack`: ``(inputs: EvalInputs) -> Result``,
with the chance level next to every accuracy. :func:`lifeveil.bench.evaluate.evaluate_method`
runs every registered attack, in registration order. Each module also keeps its pure attack
functions (``identity_probes``, ``accumulation_attack``, ...), callable on plain arrays.

>>> from lifeveil.bench.attacks import list_attacks
>>> list_attacks()
['accumulation', 'bystander', 'identity_probe', 'ledger', 'membership', 'recon_decoder', 'recon_optim', 'reid']
"""

from __future__ import annotations

from lifeveil.bench.attacks.accumulation import accumulation_attack, measure_accumulation
from lifeveil.bench.attacks.bystander import bystander_attack, measure_bystander
from lifeveil.bench.attacks.identity import (
    identity_probes,
    measure_identity_probe,
    measure_reid,
    reidentification,
)
from lifeveil.bench.attacks.ledger import ledger_ceilings, measure_ledger
from lifeveil.bench.attacks.membership import measure_membership, membership_inference
from lifeveil.bench.attacks.recon_decoder import decoder_attack, measure_recon_decoder
from lifeveil.bench.attacks.recon_optim import measure_recon_optim, optimisation_attack
from lifeveil.bench.contracts import Attack, Result
from lifeveil.registry import Registry

ATTACKS: Registry[Result] = Registry("attack")


def register_attack(name: str, attack: Attack, help: str = "") -> None:
    """Add ``attack`` under ``name`` (duplicates refused); evaluate runs it after those before."""
    ATTACKS.register(name, attack, help)


def get_attack(name: str) -> Attack:
    """The attack called ``name``; UnknownNameError lists the attacks."""
    return ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Names of the registered attacks, sorted."""
    return ATTACKS.names()


# Registration order is run order: single-release attacks, then accumulation, then inversion.
register_attack(
    "identity_probe", measure_identity_probe, "linear and MLP identity probes on ORL faces"
)
register_attack("reid", measure_reid, "1-shot re-identification top-1 and mAP")
register_attack("bystander", measure_bystander, "identity vs scene on frames with pasted faces")
register_attack("membership", measure_membership, "loss-threshold MIA on a downstream head")
register_attack(
    "accumulation",
    measure_accumulation,
    "identity from the mean of k releases of a person, k = 1 ... 256 and inf (the headline)",
)
register_attack(
    "ledger",
    measure_ledger,
    "the privacy ledger's bits per release and the Fano ceiling on identity at each k",
)
register_attack(
    "recon_decoder", measure_recon_decoder, "features -> face decoder on auxiliary faces"
)
register_attack("recon_optim", measure_recon_optim, "latent optimisation through G (Appendix A)")

__all__ = [
    "ATTACKS",
    "accumulation_attack",
    "bystander_attack",
    "decoder_attack",
    "get_attack",
    "identity_probes",
    "ledger_ceilings",
    "list_attacks",
    "membership_inference",
    "optimisation_attack",
    "register_attack",
    "reidentification",
]
