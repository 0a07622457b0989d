#!/bin/sh
# orch-shim: @HOOK@
# Installed by `orch hooks install`; `orch hooks uninstall` puts back what was
# here before. Runs the hook that was here first (kept beside this one as
# `@HOOK@.orch-chained`), then orch's part, which does nothing outside the
# worktrees of orch's tasks.
chained="$(dirname "$0")/@HOOK@.orch-chained"
if [ -x "$chained" ]; then
    "$chained" "$@" || exit $?
fi
orch=@ORCH@
[ -x "$orch" ] || orch=$(command -v orch) || exit 0
exec "$orch" __hook @HOOK@ "$@"
