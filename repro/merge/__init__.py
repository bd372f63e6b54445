"""Weight merging (claim 7): linear interpolation, task arithmetic, TIES and DARE over full
checkpoints, streamed tensor by tensor (``stream``); stage functions in ``stage``."""
