"""The data layer: the dataset registry, preparing and loading splits (``datasets``), the
offline sources tried in order (``sources``) and the IDX file format (``idx``). Torch loads
only where a split is loaded."""
