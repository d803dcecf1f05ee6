"""Privacy attacks (PL) and reconstruction attacks (RR) on released features, chosen by name.

Each attack is a function of released features (and labels, images, or the method itself for
black-box queries and differentiable inversion) returning a dict of metrics, with the chance
level next to every accuracy.

>>> from lifeveil.bench.attacks import list_attacks
>>> list_attacks()
['accumulation', 'bystander', 'identity_probe', 'membership', 'recon_decoder', 'recon_optim', 'reid']
"""

from __future__ import annotations

from collections.abc import Callable

from lifeveil.bench.attacks.accumulation import accumulation_attack
from lifeveil.bench.attacks.bystander import bystander_attack
from lifeveil.bench.attacks.identity import identity_probes, reidentification
from lifeveil.bench.attacks.membership import membership_inference
from lifeveil.bench.attacks.recon_decoder import decoder_attack
from lifeveil.bench.attacks.recon_optim import optimisation_attack
from lifeveil.registry import Registry

AttackFn = Callable[..., dict[str, object]]
ATTACKS: Registry[dict[str, object]] = Registry("attack")


def register_attack(name: str, fn: AttackFn, help: str = "") -> None:
    """Add an attack function under ``name`` (duplicates refused)."""
    ATTACKS.register(name, fn, help)


def get_attack(name: str) -> AttackFn:
    """The attack function called ``name``; UnknownNameError lists the attacks."""
    return ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return ATTACKS.names()


register_attack(
    "accumulation",
    accumulation_attack,
    "identity from the mean of k releases of a person, k = 1 ... 256 and inf (the headline)",
)
register_attack("identity_probe", identity_probes, "linear and MLP identity probes on ORL faces")
register_attack("reid", reidentification, "1-shot re-identification top-1 and mAP")
register_attack("bystander", bystander_attack, "identity vs scene on frames with pasted faces")
register_attack("recon_decoder", decoder_attack, "features -> face decoder on auxiliary faces")
register_attack("recon_optim", optimisation_attack, "latent optimisation through G (Appendix A)")
register_attack("membership", membership_inference, "loss-threshold MIA on a downstream head")

__all__ = [
    "ATTACKS",
    "accumulation_attack",
    "bystander_attack",
    "decoder_attack",
    "get_attack",
    "identity_probes",
    "list_attacks",
    "membership_inference",
    "optimisation_attack",
    "register_attack",
    "reidentification",
]
