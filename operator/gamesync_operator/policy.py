"""What the operator's own configuration lets a GameSyncCluster ask for (pure).

Whoever may create a GameSyncCluster chooses the image its pods run; the operator's allow-list
is what bounds that choice across every namespace it serves.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from gamesync_operator.errors import SpecError
from gamesync_operator.spec import ClusterSpec

__all__ = ["ImagePolicy"]


@dataclass(frozen=True)
class ImagePolicy:
    """Glob patterns an image reference must match, e.g. `ghcr.io/nommie/gamesync-gateway:*`.

    No patterns: any image (the CLI's default; the chart always passes some). Matching is on
    the reference exactly as written in the spec: no registry or tag is filled in.
    """

    patterns: tuple[str, ...] = ()

    def allows(self, image: str) -> bool:
        return not self.patterns or any(fnmatch.fnmatchcase(image, p) for p in self.patterns)

    def check(self, spec: ClusterSpec) -> None:
        """Raise SpecError(ImageNotAllowed) when the spec's gateway image is not allowed."""
        if not self.allows(spec.gateway.image):
            raise SpecError(
                "ImageNotAllowed",
                f"image {spec.gateway.image!r} matches none of the operator's allowed images "
                f"({', '.join(self.patterns)}); nothing was changed",
            )
