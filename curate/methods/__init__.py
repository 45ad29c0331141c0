"""Methods: one package per published method, each with its stage and policies. They see only the
contracts (`curate.stage`, `curate.policy`, `curate.dataset`) and `kernels`; `clustering` and `models` are
shared by several methods."""
