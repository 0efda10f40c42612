"""The kopf operator that runs GameSyncCluster resources."""

__all__: list[str] = []
