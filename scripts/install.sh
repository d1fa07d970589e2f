#!/usr/bin/env bash
# Installs Patronus on a bare-metal Debian or Ubuntu host (as root).
#
#   sudo scripts/install.sh [--hugepages N] [--binary FILE] [--dry-run]
#   sudo scripts/install.sh --uninstall [--purge] [--dry-run]
#   DESTDIR=/tmp/stage scripts/install.sh ...     # stage the files only
#
# What it does, each step only when needed (running it twice changes
# nothing the second time):
#   1. the Debian packages to build and run (scripts/setup.sh), and a release
#      build (skipped with --binary FILE: install that binary instead);
#   2. /usr/local/bin/patronus, and the dashboards, alert rules and docs in
#      /usr/local/share/patronus and /usr/local/share/doc/patronus;
#   3. /etc/patronus/patronus.toml from conf/appliance.toml (commented) when
#      there is none; an existing config is never touched (the new template
#      goes next to it as patronus.toml.dist);
#   4. the systemd unit patronus.service (Restart=on-failure, the limits and
#      capabilities DPDK needs), enabled but not started until you say;
#   5. 2 MiB hugepages (default 1024 = 2 GiB), reserved now and persisted in
#      /etc/sysctl.d/80-patronus.conf; vfio-pci loaded at boot
#      (/etc/modules-load.d/patronus.conf);
#   6. the PCI devices named in the config bound to vfio-pci with
#      dpdk-devbind.py; each device's kernel driver is remembered in
#      /var/lib/patronus/nic-drivers so --uninstall gives it back.
#
# --uninstall stops and removes all of that and rebinds the NICs to their
# kernel drivers; /etc/patronus (config and keys) stays unless --purge.
# --dry-run prints every action and changes nothing. With DESTDIR the files
# go under DESTDIR and the running system (packages, systemctl, sysctl,
# NIC bindings) is left alone: the steps skipped are listed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

DESTDIR=${DESTDIR:-}
dry=0 uninstall=0 purge=0 hugepages=1024 binary=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    --hugepages) hugepages=${2:?--hugepages needs a number of 2 MiB pages}; shift ;;
    --binary) binary=${2:?--binary needs a file}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $hugepages in ''|*[!0-9]*) echo "install.sh: --hugepages takes a number of 2 MiB pages" >&2; exit 2 ;; esac

bin=$DESTDIR/usr/local/bin/patronus
etc=$DESTDIR/etc/patronus
unit=$DESTDIR/etc/systemd/system/patronus.service
sysctl_conf=$DESTDIR/etc/sysctl.d/80-patronus.conf
modules_conf=$DESTDIR/etc/modules-load.d/patronus.conf
state=$DESTDIR/var/lib/patronus
share=$DESTDIR/usr/local/share/patronus
doc=$DESTDIR/usr/local/share/doc/patronus
system=1   # touch the running system (not when staging into DESTDIR)
[ -n "$DESTDIR" ] && system=0
# NIC binding reads sysfs; PATRONUS_SYSFS points it at a fake one (with a
# fake dpdk-devbind.py on PATH), which tests/install.rs uses together with
# DESTDIR.
sysfs=${PATRONUS_SYSFS:-/sys}
bind=$system
[ -n "${PATRONUS_SYSFS:-}" ] && bind=1
changed=0
# systemd running (not in a container or chroot): systemctl works.
systemd_up=0
[ -d /run/systemd/system ] && systemd_up=1

say() { echo "install.sh: $*"; }
run() { # a command that changes something
  changed=1
  if [ $dry = 1 ]; then echo "would run: $*"; else "$@"; fi
}
on_system() { # a command on the running system; only without DESTDIR
  if [ $system = 1 ]; then run "$@"; else echo "DESTDIR set, not run: $*"; fi
}
systemctl_() { # systemctl, when systemd runs
  if [ $system = 1 ] && [ $systemd_up = 0 ]; then
    echo "install.sh: systemd is not running here, not run: systemctl $*"
  else
    on_system systemctl "$@"
  fi
}
put() { # MODE SOURCE DEST: install when missing or different
  local mode=$1 src=$2 dst=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    return
  fi
  say "installing $dst"
  run install -D -m "$mode" "$src" "$dst"
}
put_text() { # MODE DEST TEXT
  local tmp
  tmp=$(mktemp)
  printf '%s\n' "$3" > "$tmp"
  put "$1" "$tmp" "$2"
  rm -f "$tmp"
}

if [ $system = 1 ] && [ "$(id -u)" != 0 ] && [ $dry = 0 ]; then
  echo "install.sh: run as root (sudo), or with --dry-run, or with DESTDIR=DIR to stage the files" >&2
  exit 1
fi

# --- the unit ---------------------------------------------------------------
unit_text() {
  cat <<'EOF'
# Patronus SD-WAN appliance (installed by scripts/install.sh).
#
# Worker cores: the appliance pins one poll-mode worker per lcore in
# [eal] worker_lcores. Keep the kernel and other services off them: boot
# with isolcpus=<those CPUs> nohz_full=<same> rcu_nocbs=<same> (GRUB_CMDLINE_LINUX
# in /etc/default/grub, then update-grub), and/or keep services off them
# with `systemctl set-property --runtime -- user.slice system.slice AllowedCPUs=0`.
# `patronus check` reports which worker cores are not isolated.
[Unit]
Description=Patronus SD-WAN appliance
Documentation=file:///usr/local/share/doc/patronus/OPERATIONS.md
After=network-pre.target systemd-modules-load.service dev-hugepages.mount
Wants=network-pre.target
ConditionPathExists=/etc/patronus/patronus.toml
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=simple
# Refuses to start on a bad config or an environment that cannot run it,
# naming the problem and its fix (journalctl -u patronus).
ExecStartPre=/usr/local/bin/patronus check --config /etc/patronus/patronus.toml
ExecStart=/usr/local/bin/patronus run --config /etc/patronus/patronus.toml
ExecReload=/usr/local/bin/patronus reload --config /etc/patronus/patronus.toml
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
# JSON lines for journald/Loki; `journalctl -u patronus -o cat | jq`.
Environment=PATRONUS_LOG_FORMAT=json
# DPDK: locked hugepage memory, VFIO, raw I/O, real-time pinning.
LimitMEMLOCK=infinity
LimitNOFILE=65536
CapabilityBoundingSet=CAP_IPC_LOCK CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_SYS_RAWIO CAP_SYS_NICE CAP_DAC_OVERRIDE CAP_SYS_RESOURCE
AmbientCapabilities=CAP_IPC_LOCK CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_SYS_RAWIO CAP_SYS_NICE CAP_DAC_OVERRIDE CAP_SYS_RESOURCE
RuntimeDirectory=patronus
RuntimeDirectoryMode=0700
StateDirectory=patronus
NoNewPrivileges=yes
ProtectHome=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target
EOF
}

# --- uninstall --------------------------------------------------------------
if [ $uninstall = 1 ]; then
  if [ -f "$unit" ]; then
    systemctl_ disable --now patronus.service
  fi
  if [ -f "$state/nic-drivers" ]; then
    while read -r addr driver; do
      [ -n "$addr" ] || continue
      if [ -e "$sysfs/bus/pci/devices/$addr" ] && [ $bind = 1 ]; then
        say "giving $addr back to $driver"
        if [ "$driver" = none ]; then run dpdk-devbind.py -u "$addr" </dev/null; else run dpdk-devbind.py --bind="$driver" "$addr" </dev/null; fi
      else
        echo "DESTDIR set or device absent, not run: dpdk-devbind.py --bind=$driver $addr"
      fi
    done < "$state/nic-drivers"
  fi
  for f in "$unit" "$bin" "$bin.prev" "$sysctl_conf" "$modules_conf" "$state/nic-drivers"; do
    if [ -e "$f" ]; then say "removing $f"; run rm -f "$f"; fi
  done
  for d in "$share" "$doc"; do
    if [ -e "$d" ]; then say "removing $d"; run rm -rf "$d"; fi
  done
  [ -d "$state" ] && run rmdir --ignore-fail-on-non-empty "$state"
  systemctl_ daemon-reload
  if [ -f "$sysctl_conf" ] || [ $system = 1 ]; then
    echo "install.sh: hugepages stay reserved until reboot (or: sysctl -w vm.nr_hugepages=0)"
  fi
  if [ -d "$etc" ]; then
    if [ $purge = 1 ]; then say "removing $etc (--purge)"; run rm -rf "$etc"
    else say "kept $etc (config and keys); --purge removes it"; fi
  fi
  say "uninstalled"
  exit 0
fi

# --- 1. packages and build ----------------------------------------------------
if [ -z "$binary" ]; then
  if [ $system = 1 ] && [ $dry = 0 ]; then
    "$here/scripts/setup.sh" --run
  else
    echo "not run (DESTDIR or --dry-run): $here/scripts/setup.sh --run"
  fi
  [ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
  if [ $dry = 1 ]; then
    echo "would run: cargo build --release --locked -p patronus"
  else
    (cd "$here" && cargo build --release --locked -q -p patronus)
  fi
  binary=$here/target/release/patronus
fi
if [ $dry = 0 ] && [ ! -x "$binary" ]; then
  echo "install.sh: $binary is not an executable" >&2
  exit 1
fi

# --- 2. binary, dashboards, docs -----------------------------------------------
# An upgrade keeps the binary it replaces as patronus.prev (rollback:
# docs/OPERATIONS.md, "Upgrade").
if [ -f "$bin" ] && ! cmp -s "$binary" "$bin"; then
  say "keeping the running version as $bin.prev"
  run cp -p "$bin" "$bin.prev"
fi
put 0755 "$binary" "$bin"
for f in $(cd "$here/conf" && find grafana prometheus -type f | sort); do
  rel=$f
  f=$here/conf/$rel
  put 0644 "$f" "$share/$rel"
done
for f in README.md docs/OPERATIONS.md docs/CONFIG.md docs/METRICS.md docs/PATHS.md docs/TUNNELS.md docs/DPI.md; do
  put 0644 "$here/$f" "$doc/$(basename "$f")"
done

# --- 3. config ------------------------------------------------------------------
cfg=$etc/patronus.toml
if [ ! -d "$etc" ]; then run install -d -m 0750 "$etc"; fi
if [ -e "$cfg" ]; then
  if ! cmp -s "$here/conf/appliance.toml" "$cfg"; then
    put 0640 "$here/conf/appliance.toml" "$cfg.dist"
  fi
else
  say "installing $cfg (edit it: the PCI addresses, addresses and routes are examples)"
  run install -m 0640 "$here/conf/appliance.toml" "$cfg"
fi

# --- 4. systemd unit ------------------------------------------------------------
tmp=$(mktemp)
unit_text > "$tmp"
if ! { [ -f "$unit" ] && cmp -s "$tmp" "$unit"; }; then
  say "installing $unit"
  run install -D -m 0644 "$tmp" "$unit"
  systemctl_ daemon-reload
fi
rm -f "$tmp"
if [ $system = 1 ] && [ $systemd_up = 1 ] && ! systemctl is-enabled --quiet patronus.service 2>/dev/null; then
  systemctl_ enable patronus.service
elif [ $system = 1 ] && [ $systemd_up = 0 ]; then
  echo "install.sh: systemd is not running here, not run: systemctl enable patronus.service"
elif [ $system = 0 ]; then
  echo "DESTDIR set, not run: systemctl enable patronus.service"
fi

# --- 5. hugepages and vfio-pci --------------------------------------------------------
put_text 0644 "$sysctl_conf" "# Patronus: 2 MiB hugepages for DPDK (scripts/install.sh --hugepages N).
vm.nr_hugepages = $hugepages"
put_text 0644 "$modules_conf" "# Patronus: the userspace NIC driver DPDK uses.
vfio-pci"
if [ $system = 1 ]; then
  now=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
  if [ "$now" -lt "$hugepages" ]; then
    say "reserving $hugepages hugepages (now $now)"
    run sysctl -q -w vm.nr_hugepages="$hugepages"
  fi
  if ! [ -d /sys/bus/pci/drivers/vfio-pci ]; then
    run modprobe vfio-pci || echo "install.sh: warning: cannot load vfio-pci now (it loads at boot from $modules_conf); patronus check says more"
  fi
else
  echo "DESTDIR set, not run: sysctl -w vm.nr_hugepages=$hugepages; modprobe vfio-pci"
fi

# --- 6. NIC binding ----------------------------------------------------------------------
src_cfg=$cfg
[ -e "$src_cfg" ] || src_cfg=$here/conf/appliance.toml
pci=$(sed -n 's/^[[:space:]]*device[[:space:]]*=[[:space:]]*"\([0-9a-fA-F]\{4\}:[0-9a-fA-F]\{2\}:[0-9a-fA-F]\{2\}\.[0-7]\)".*/\1/p' "$src_cfg" | sort -u)
for addr in $pci; do
  dev=$sysfs/bus/pci/devices/$addr
  if [ ! -e "$dev" ]; then
    echo "install.sh: warning: $addr (in $cfg) is not on this host: put your NICs' addresses in the config (lspci -D | grep -i ether) and rerun"
    continue
  fi
  driver=none
  [ -e "$dev/driver" ] && driver=$(basename "$(readlink "$dev/driver")")
  [ "$driver" = vfio-pci ] && continue
  if [ $bind = 0 ]; then
    echo "DESTDIR set, not run: dpdk-devbind.py --bind=vfio-pci $addr (now $driver)"
    continue
  fi
  if ! grep -qs "^$addr " "$state/nic-drivers"; then
    run install -d -m 0755 "$state"
    if [ $dry = 1 ]; then echo "would record: $addr $driver in $state/nic-drivers"; else echo "$addr $driver" >> "$state/nic-drivers"; fi
  fi
  say "binding $addr to vfio-pci (was $driver)"
  run dpdk-devbind.py --force --bind=vfio-pci "$addr"
done
if [ -n "$pci" ] && [ $system = 1 ] && [ -z "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]; then
  echo "install.sh: warning: no IOMMU groups: vfio-pci needs the IOMMU on (intel_iommu=on iommu=pt, or amd_iommu=on, on the kernel command line); patronus check explains"
fi

if [ $changed = 0 ]; then
  say "nothing to do: already installed"
else
  say "done"
fi
cat <<EOF
Next:
  edit $cfg, then: patronus check --config /etc/patronus/patronus.toml
  systemctl start patronus; journalctl -u patronus -f; patronus show ports
  docs: /usr/local/share/doc/patronus/OPERATIONS.md
EOF
