#!/usr/bin/env bash
# Installs what `npm run bench` needs on Debian 12 (bookworm) / Ubuntu, as root:
#   sip-tester        SIPp, the load generator and phones of the signalling benchmark
#   kamailio          the SIP baseline (registrar, usrloc, tm, rr, auth, htable, nathelper, ctl:
#                     all in the main package) and kamcmd (shared-memory figures)
#   rtpengine-daemon  the media baseline (binary `rtpengine`, run in userspace mode, --table=-1);
#                     the `rtpengine` package would also pull in the kernel module (DKMS), not needed
#   gcc, libc6-dev    to build bench/media/rtpload.c, the RTP load generator
#   time              /usr/bin/time, SIPp's own CPU time
# The packaged services are not started by the benchmark (it runs its own instances on
# 127.0.0.1); policy-rc.d in containers usually keeps apt from starting them anyway.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "run as root: sudo bash bench/setup.sh" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends sip-tester kamailio rtpengine-daemon gcc libc6-dev time procps
# Stop the packaged daemons if apt started them (they would hold 5060 and 2223/ng).
for svc in kamailio rtpengine-daemon ngcp-rtpengine-daemon; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
echo "versions:"
sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' || true
kamailio -v 2>&1 | head -1 || true
rtpengine --version 2>&1 | head -1 || true
gcc --version | head -1
