"""Builder of RealNVP stacks: affine couplings alternated with feature reversals."""

from __future__ import annotations

from collections.abc import Sequence

from flowad.bijections import AffineCoupling, Bijection, Compose, Permutation, Whitening
from flowad.flows.flow import Flow

__all__ = ["build_realnvp"]


def build_realnvp(
    features: int,
    *,
    n_couplings: int = 6,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    s_max: float = 3.0,
    lipschitz_k: float | None = None,
    whiten: bool = False,
    identity_init: bool = False,
) -> Flow:
    """RealNVP flow of ``n_couplings`` affine couplings with reversals in between.

    Reversing the features between couplings alternates which half is transformed, so with
    two or more couplings every feature is transformed. With ``features == 1`` each coupling
    degenerates to a learned elementwise affine map.

    ``whiten`` puts a :class:`~flowad.bijections.Whitening` layer first (the identity until its
    statistics are set); ``identity_init`` starts spectrally normalized couplings as the
    identity (see :class:`~flowad.bijections.AffineCoupling`). With both, the untrained flow is
    the Gaussian of the whitening statistics. ``n_couplings=0`` builds that Gaussian alone (with
    ``whiten``) or the standard normal (without): a flow with nothing to train.
    """
    if n_couplings < 0:
        raise ValueError(f"n_couplings must be >= 0, got {n_couplings}.")
    layers: list[Bijection] = [Whitening(features)] if whiten else []
    for i in range(n_couplings):
        if i > 0 and features > 1:
            layers.append(Permutation.reverse(features))
        layers.append(
            AffineCoupling(
                features,
                hidden=hidden,
                activation=activation,
                s_max=s_max,
                lipschitz_k=lipschitz_k,
                identity_init=identity_init,
            )
        )
    return Flow(Compose(layers), features)
