#!/usr/bin/env bash
# Our SFTP server against OpenSSH's internal-sftp (sshd, chrooted, key login) and
# `rclone serve sftp` (password login), all on this machine in one run, with the same client
# (OpenSSH `sftp -b`, default buffer and request settings) and the same data:
#
#   1. put of one SFTP_BENCH_BIG_MB file, then get of it back (SHA-256 must match): MB/s;
#   2. put -r, then get -r, of a folder of SFTP_BENCH_FILES small files (100 bytes each): s.
#
# Prints one table: measure x {cells, openssh, rclone}, and cells against each peer (for MB/s
# higher is better, for seconds lower is better). Targets (issue 7): >= 0.8x OpenSSH and >= rclone.
#
# cells logs in as admin with a personal access token as the password (sshpass); OpenSSH as
# root with an Ed25519 key, chrooted to a root-owned folder under /srv (sshd refuses a chroot
# under /tmp); rclone with a user and password. Needs root (sshd), sshpass, rclone,
# openssh-server, installed with apt-get when missing.
#
# Usage: bench/sftp.sh   (after cargo build --release)
# Environment:
#   CELLS_BIN             binary [target/release/cells, or $CARGO_TARGET_DIR/release/cells]
#   SFTP_BENCH_SERVERS    which servers, space-separated [cells openssh rclone]
#   SFTP_BENCH_BIG_MB     the large file, MiB [1024]
#   SFTP_BENCH_FILES      small files [1000]
#   TMPDIR                where the temp dir goes; needs about 3 x SFTP_BENCH_BIG_MB free
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a SERVERS <<<"${SFTP_BENCH_SERVERS:-cells openssh rclone}"
BIG_MB=${SFTP_BENCH_BIG_MB:-1024}
FILES=${SFTP_BENCH_FILES:-1000}
check_count SFTP_BENCH_BIG_MB "$BIG_MB"
check_count SFTP_BENCH_FILES "$FILES"
[[ $(id -u) -eq 0 ]] || die "run as root: sshd serves the OpenSSH peer"

resolve_cells_bin
ensure_tool sftp openssh-client
ensure_tool sshpass
ensure_tool rclone
ensure_tool sshd openssh-server
[[ -x /usr/lib/openssh/sftp-server ]] || ensure_tool /usr/lib/openssh/sftp-server openssh-sftp-server
setup_workdir

CHROOT=""
SSHD_PID_FILE=""
RCLONE_PID=""
stop_peers() {
  local status=$?
  [[ -n $SSHD_PID_FILE && -s $SSHD_PID_FILE ]] && kill "$(cat "$SSHD_PID_FILE")" 2>/dev/null || true
  [[ -n $RCLONE_PID ]] && kill "$RCLONE_PID" 2>/dev/null || true
  [[ -n $CHROOT && -d $CHROOT ]] && rm -rf -- "$CHROOT"
  (exit "$status") # cleanup reads the exit status from $?
  cleanup
}
trap stop_peers EXIT

mkdir -p "$WORK_DIR/in/small" "$WORK_DIR/ssh"
head -c "${BIG_MB}M" /dev/urandom >"$WORK_DIR/in/big.bin"
BIG_SHA=$(sha256sum <"$WORK_DIR/in/big.bin" | cut -d' ' -f1)
for ((i = 0; i < FILES; i++)); do head -c 100 /dev/urandom >"$WORK_DIR/in/small/f$i"; done

has() {
  local s
  for s in "${SERVERS[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}

# Per server: the sftp command line (an array named SFTP_<server>) and the remote folder.
declare -a SFTP_cells SFTP_openssh SFTP_rclone
declare -A REMOTE
common_opts=(-o StrictHostKeyChecking=no -o "UserKnownHostsFile=$WORK_DIR/ssh/known_hosts" -o LogLevel=ERROR)

if has cells; then
  start_server
  token=$(cells_cli admin user token -u admin -e 2h -l bench-sftp -q)
  SFTP_cells=(sshpass -p "$token" sftp -P "$SFTP_PORT" -o BatchMode=no -o PubkeyAuthentication=no
    "${common_opts[@]}" -b - admin@127.0.0.1)
  REMOTE[cells]=/personal-files
fi

if has openssh; then
  mkdir -p /run/sshd
  CHROOT=$(mktemp -d /srv/cells-bench-sftp.XXXXXX)
  chmod 755 "$CHROOT"
  mkdir -p "$CHROOT/data"
  ssh-keygen -q -t ed25519 -N '' -f "$WORK_DIR/ssh/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -f "$WORK_DIR/ssh/client_ed25519"
  cp "$WORK_DIR/ssh/client_ed25519.pub" "$WORK_DIR/ssh/authorized_keys"
  ssh_port=$(free_port)
  SSHD_PID_FILE=$WORK_DIR/ssh/sshd.pid
  cat >"$WORK_DIR/ssh/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $WORK_DIR/ssh/host_ed25519
PidFile $SSHD_PID_FILE
AuthorizedKeysFile $WORK_DIR/ssh/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
Match User root
  ChrootDirectory $CHROOT
  ForceCommand internal-sftp -d /data
  AllowTcpForwarding no
EOF
  /usr/sbin/sshd -f "$WORK_DIR/ssh/sshd_config" -E "$WORK_DIR/ssh/sshd.log"
  SFTP_openssh=(sftp -P "$ssh_port" -i "$WORK_DIR/ssh/client_ed25519" "${common_opts[@]}" -b - root@127.0.0.1)
  REMOTE[openssh]=/data
fi

if has rclone; then
  mkdir -p "$WORK_DIR/rclone"
  rclone_port=$(free_port)
  env -u AWS_CA_BUNDLE rclone serve sftp "$WORK_DIR/rclone" --addr "127.0.0.1:$rclone_port" \
    --user u --pass p --config /dev/null >"$WORK_DIR/rclone.log" 2>&1 &
  RCLONE_PID=$!
  SFTP_rclone=(sshpass -p p sftp -P "$rclone_port" -o BatchMode=no -o PubkeyAuthentication=no
    "${common_opts[@]}" -b - u@127.0.0.1)
  REMOTE[rclone]=
fi
sleep 1

# timed SERVER BATCH: run the batch with SERVER's sftp, print seconds.
timed() {
  local -n cmd="SFTP_$1"
  local start end
  start=$EPOCHREALTIME
  printf '%s\n' "$2" | "${cmd[@]}" >"$WORK_DIR/last.log" 2>&1 || {
    cat "$WORK_DIR/last.log" >&2
    die "$1: sftp batch failed"
  }
  end=$EPOCHREALTIME
  elapsed "$start" "$end"
}

declare -A PUT GET SPUT SGET
bytes=$((BIG_MB * 1024 * 1024))
# Each server's put and get add 2 x BIG_MB to the page cache, freed again by the rm after. On a
# fresh virtual machine the first to take memory the guest never touched pays for the host to
# back it (seen here: OpenSSH's put at 208 MB/s when it ran first, 421 when second), so the
# memory is touched once before any server runs: every server then writes into recycled pages.
log "warm-up: writing and removing $((2 * BIG_MB)) MiB"
dd if=/dev/zero of="$WORK_DIR/warm.bin" bs=1M count=$((2 * BIG_MB)) status=none
rm -f "$WORK_DIR/warm.bin"
for s in "${SERVERS[@]}"; do
  r=${REMOTE[$s]}
  log "$s: put and get ${BIG_MB} MiB"
  t=$(timed "$s" "put $WORK_DIR/in/big.bin $r/big.bin")
  PUT[$s]=$(mb_per_s "$bytes" "$t")
  rm -f "$WORK_DIR/back.bin"
  t=$(timed "$s" "get $r/big.bin $WORK_DIR/back.bin")
  GET[$s]=$(mb_per_s "$bytes" "$t")
  [[ $(sha256sum <"$WORK_DIR/back.bin" | cut -d' ' -f1) == "$BIG_SHA" ]] || die "$s: the downloaded file differs"
  rm -f "$WORK_DIR/back.bin"
  timed "$s" "rm $r/big.bin" >/dev/null
  log "$s: put -r and get -r of $FILES small files"
  SPUT[$s]=$(timed "$s" "put -r $WORK_DIR/in/small $r/small")
  rm -rf "$WORK_DIR/small-back"
  SGET[$s]=$(timed "$s" "get -r $r/small $WORK_DIR/small-back")
  diff -r "$WORK_DIR/in/small" "$WORK_DIR/small-back" >/dev/null || die "$s: the small files came back different"
done

row() { # LABEL ARRAY
  local -n values=$2
  local s line
  line=$(printf '%-34s' "$1")
  for s in "${SERVERS[@]}"; do line+=$(printf ' %10s' "${values[$s]}"); done
  if has cells; then
    for s in "${SERVERS[@]}"; do
      [[ $s == cells ]] && continue
      line+=$(printf ' %14s' "$(ratio "${values[cells]}" "${values[$s]}")")
    done
  fi
  echo "$line"
}

header=$(printf '%-34s' "measure")
for s in "${SERVERS[@]}"; do header+=$(printf ' %10s' "$s"); done
if has cells; then
  for s in "${SERVERS[@]}"; do [[ $s == cells ]] || header+=$(printf ' %14s' "cells/$s"); done
fi
echo
echo "$header"
row "put ${BIG_MB} MiB (MB/s)" PUT
row "get ${BIG_MB} MiB (MB/s)" GET
row "put -r $FILES files (s)" SPUT
row "get -r $FILES files (s)" SGET
