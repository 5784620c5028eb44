#!/usr/bin/env bash
# Real clients that mount cells or keep backups in it, with a personal access token of admin as
# the password:
#   - sshfs (SFTP): rsync -a of 300 files with spaces in their names and diff -r back; git init,
#     add and commit inside the mount, git clone back out (identical files); echo > new; cat new.
#   - restic over SFTP (sftp.command = sshpass + ssh -s sftp) and restic's native S3 backend
#     (bucket `cells`): init, two backups (small files and a 20 MiB random file), check
#     --read-data, restore latest (identical), forget --keep-last 1 --prune, check.
#   - davfs2 with its default locking (use_locks 1): write a new file, mv it, umount, read it back
#     with curl over WebDAV.
# Every part runs even after a failure and prints `ok: …` or `FAIL: …` with the step that failed
# and the client's own output. The last line is `mount clients: N passed, M failed`; the exit
# status is 1 if any part failed. Needs root and /dev/fuse.
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
missing=()
command -v sshfs >/dev/null || missing+=(sshfs)
command -v fusermount3 >/dev/null || missing+=(fuse3)
command -v restic >/dev/null || missing+=(restic)
command -v mount.davfs >/dev/null || missing+=(davfs2)
command -v sshpass >/dev/null || missing+=(sshpass)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
command -v git >/dev/null || missing+=(git)
command -v bc >/dev/null || missing+=(bc)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -c /dev/fuse ]] || { echo "no /dev/fuse: sshfs and davfs2 need FUSE" >&2; exit 1; }

start_cells mount-clients
# Unmount before lib.sh's cleanup kills the server and removes $work (the mount points are in
# it): a dead sshfs or davfs2 mount under rm -rf would hang or fail.
cleanup() {
    cd /
    if mountpoint -q "$work/sshfs"; then fusermount3 -u "$work/sshfs" || fusermount3 -uz "$work/sshfs"; fi
    if mountpoint -q "$work/davfs"; then umount "$work/davfs" || umount -l "$work/davfs"; fi
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/sshfs" "$work/davfs" "$work/home"
# A private HOME: git's identity (and safe.directory, since the mount's files belong to the
# server's uid), and restic's cache, without touching the machine's own settings.
export HOME="$work/home" RESTIC_PASSWORD=mount-clients-restic RESTIC_CACHE_DIR="$work/restic-cache"
git config --global user.name 'CI mount-clients'
git config --global user.email ci@cells.invalid
git config --global safe.directory '*'
git config --global init.defaultBranch main
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CA_BUNDLE
dav="http://127.0.0.1:$port/dav/personal-files"

# A file the mounts must read before anything else: tells a broken mount from a broken write.
printf 'seeded over WebDAV\n' >"$work/seed.txt"
curl -fsS -u "admin:$token" -T "$work/seed.txt" "$dav/seed.txt"

passed=0
failed=0
# part NAME FUNCTION: runs FUNCTION in a subshell with set -e, its output in a log shown on failure.
part() {
    local name=$1 log="$work/$2.log" rc t0 t1
    t0=$(date +%s.%N)
    set +e
    (
        set -e
        "$2"
    ) >"$log" 2>&1
    rc=$?
    set -e
    t1=$(date +%s.%N)
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf 'ok: %s (%.1f s)\n' "$name" "$(echo "$t1 - $t0" | bc)"
    else
        failed=$((failed + 1))
        printf 'FAIL: %s (%.1f s); %s\n' "$name" "$(echo "$t1 - $t0" | bc)" \
            "$(grep '^failed: ' "$log" | tail -n 1)"
        tail -n 20 "$log" | sed 's/^/    | /'
    fi
}
# step WHAT COMMAND...: one client command, 5 minutes at most; on failure, names the step.
step() {
    local what=$1 rc=0
    shift
    timeout 300 "$@" || rc=$?
    if ((rc)); then
        echo "failed: $what (exit $rc)" >&2
        return "$rc"
    fi
}

sshfs_part() {
    local m="$work/sshfs" tree="$work/spaced" repo="$work/repo" d f sub
    echo "$token" | step "sshfs mount" sshfs -p "$sftp_port" \
        -o password_stdin,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null \
        admin@127.0.0.1:/personal-files "$m"
    step "sshfs mount is up" mountpoint -q "$m"
    step "read an existing file through sshfs" cmp "$work/seed.txt" "$m/seed.txt"
    for d in $(seq 1 6); do
        mkdir -p "$tree/folder $d/sub folder"
        for f in $(seq 1 50); do
            sub=''
            if ((f > 40)); then sub='sub folder/'; fi
            printf 'file %s of folder %s\n' "$f" "$d" >"$tree/folder $d/${sub}file $f with spaces.txt"
        done
    done
    step "rsync -a of 300 files into the sshfs mount" rsync -a "$tree/" "$m/spaced tree/"
    step "diff -r of the tree read back through sshfs" diff -r "$tree" "$m/spaced tree"
    step "a file of the tree is in personal-files (WebDAV GET)" cmp "$tree/folder 3/sub folder/file 45 with spaces.txt" \
        <(curl -fsS -u "admin:$token" "$dav/spaced%20tree/folder%203/sub%20folder/file%2045%20with%20spaces.txt")
    mkdir -p "$repo/src"
    printf '# demo\n' >"$repo/README.md"
    printf 'fn main() {}\n' >"$repo/src/main.rs"
    head -c 100000 /dev/urandom >"$repo/blob.bin"
    step "cp -r of a small repository into sshfs" cp -r "$repo" "$m/repo"
    cd "$m/repo"
    step "git init in sshfs" git init -q
    step "git add -A in sshfs" git add -A
    step "git commit in sshfs" git commit -qm x
    cd "$work"
    step "git clone out of sshfs" git clone -q "$m/repo" "$work/clone"
    step "cloned files identical" diff -r --exclude=.git "$repo" "$work/clone"
    step "echo x > new in sshfs" bash -c 'echo x >"$1"' _ "$m/new"
    step "cat new in sshfs gives x" grep -qx x "$m/new"
}

# backup_source DIR: some small files and one 20 MiB random file.
backup_source() {
    mkdir -p "$1/docs"
    for f in $(seq 1 20); do printf 'small file %s\n' "$f" >"$1/docs/small $f.txt"; done
    head -c 20M /dev/urandom >"$1/big.bin"
}
# restic_cycle SRC RESTIC_ARGS...: the whole life of a repository, restic run with RESTIC_ARGS.
restic_cycle() {
    local src=$1 back="$work/restored-$(basename "$1")"
    shift
    backup_source "$src"
    step "restic init" restic "$@" init
    step "restic backup" restic "$@" backup -q "$src"
    printf 'changed\n' >>"$src/docs/small 1.txt"
    step "restic backup (second snapshot)" restic "$@" backup -q "$src"
    step "restic check --read-data" restic "$@" check --read-data
    step "restic restore latest" restic "$@" restore latest --target "$back"
    step "restored tree identical" diff -r "$src" "$back$src"
    step "restic forget --keep-last 1 --prune" restic "$@" forget --keep-last 1 --prune
    step "restic check after prune" restic "$@" check
    step "one snapshot left" test "$(restic "$@" snapshots --json | jq length)" = 1
}
# repo_in_personal_files NAME: the repository is in personal-files, as seen over WebDAV.
repo_in_personal_files() {
    step "$1/config is in personal-files (WebDAV GET)" curl -fsS -o /dev/null -u "admin:$token" "$dav/$1/config"
}

restic_sftp_part() {
    local cmd="sshpass -p $token ssh -p $sftp_port -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null admin@127.0.0.1 -s sftp"
    # The very command restic runs, as OpenSSH sftp's transport (-D): it logs in and lists.
    printf 'ls /personal-files\n' | step "sftp.command lists /personal-files (sftp -D)" sftp -b - -D "$cmd"
    restic_cycle "$work/sftp-src" -r sftp:admin@127.0.0.1:/personal-files/repo -o sftp.command="$cmd"
    repo_in_personal_files repo
}

restic_s3_part() {
    # The key pair itself works (curl's SigV4 on bucket `io`): a failure below is restic's own.
    # (S3 wants the payload hash header, which curl does not add by itself.)
    step "token:gatewaysecret lists bucket io (curl --aws-sigv4)" curl -fsS -o /dev/null \
        --aws-sigv4 aws:amz:us-east-1:s3 -u "$token:gatewaysecret" -H "x-amz-content-sha256: $(sha256sum </dev/null | cut -d' ' -f1)" \
        "http://127.0.0.1:$port/io/?list-type=2&max-keys=1"
    export AWS_ACCESS_KEY_ID="$token" AWS_SECRET_ACCESS_KEY=gatewaysecret
    restic_cycle "$work/s3-src" -r "s3:http://127.0.0.1:$port/cells/personal-files/repo2"
    repo_in_personal_files repo2
}

davfs_part() {
    local m="$work/davfs"
    printf 'secrets %s\nuse_locks 1\n' "$work/davsecrets" >"$work/davfs2.conf"
    printf '%s/ admin %s\n' "$dav" "$token" >"$work/davsecrets"
    chmod 600 "$work/davsecrets"
    step "mount -t davfs" mount -t davfs -o conf="$work/davfs2.conf" "$dav/" "$m" </dev/null
    step "davfs2 mount is up" mountpoint -q "$m"
    step "read an existing file through davfs2" cmp "$work/seed.txt" "$m/seed.txt"
    step "write a new file in davfs2" bash -c 'printf "hello davfs2\n" >"$1"' _ "$m/dav-new.txt"
    step "mv the new file to a new name in davfs2" mv "$m/dav-new.txt" "$m/dav-moved.txt"
    # davfs2 uploads a closed file some seconds later, and at the latest when unmounted (umount
    # waits for that): read it back over WebDAV only then.
    step "umount davfs2" umount "$m"
    step "curl GET of the moved file" curl -fsS -u "admin:$token" -o "$work/dav-back.txt" "$dav/dav-moved.txt"
    step "moved file has the content written" grep -qx 'hello davfs2' "$work/dav-back.txt"
    step "old name is gone (404)" test "$(curl -sS -o /dev/null -w '%{http_code}' -u "admin:$token" "$dav/dav-new.txt")" = 404
}

# restic retries a 500 and sshfs hides errors as EIO: a server panic must not pass unseen.
server_log_clean() { ! grep -E 'panicked' "$work/server.log"; }

echo "tools: $(sshfs --version 2>&1 | grep -i '^sshfs'), $(restic version | cut -d' ' -f1-2), $(mount.davfs -V | head -n 1)"
part "sshfs: rsync -a 300 files with spaces, diff -r; git init/add/commit, clone out; echo > new" sshfs_part
part "restic over SFTP: init, backup x2, check --read-data, restore (identical), forget --prune" restic_sftp_part
part "restic native S3 (bucket cells): init, backup x2, check --read-data, restore, forget --prune" restic_s3_part
part "davfs2 (use_locks 1): write a new file, mv it, umount, read it back over WebDAV" davfs_part
part "server log has no panic" server_log_clean
echo "mount clients: $passed passed, $failed failed"
((failed == 0))
