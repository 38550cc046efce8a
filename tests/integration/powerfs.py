#!/usr/bin/env python3
"""powerfs.py: a FUSE filesystem that forgets, at unmount, everything that was never synced.

Usage: powerfs.py [--seed DIR] STATE MOUNTPOINT       (runs in the foreground until unmounted)

Processes see an ordinary filesystem at MOUNTPOINT, backed by STATE/live. Beside it powerfs
keeps what a disk would hold after a power cut: STATE/durable.json (the durable namespace: for
each durable inode its kind, mode, and for a directory its entries) and STATE/inodes/N (the
durable bytes of file inode N). Unmounting is the power cut: STATE/live is not looked at
again; the next mount rebuilds it from the durable state alone. The test kills every process
that uses the mount before unmounting, so nothing runs past the cut.

The model, a conservative reading of what POSIX promises and ext4 (data=ordered) gives:
- File data: fsync or fdatasync of a file makes its current bytes and size durable (its dirty
  ranges are copied to STATE/inodes/N). Bytes written since the last sync of that file are
  lost, all of them: nothing is flushed "on its own" later, nothing is kept in part. A
  truncate is data too: it is lost unless the file is synced. write(), close(), flush and
  sync_file_range() make nothing durable; a shared mmap's pages count once written back to
  the file and synced.
- Names: a create, mkdir, link, rename or unlink is durable only once the directory that holds
  the name is fsynced; fsync of a directory makes its whole current list of entries durable
  (each entry pointing at the inode it names now). fsync of a file does not make its name
  durable (ext4 often does; POSIX does not promise it). A rename between two directories is
  durable in each directory separately, so after a cut the file may be in both, or neither
  (ext4 journals both halves together; the split is the stricter case).
- A file whose name is durable but whose data was never synced comes back empty (ext4's
  data=ordered would give its allocated blocks, but a file created and written without fsync
  may still come back empty or short there too).
- Modes and owners are taken when a name or the data is made durable; times are not kept.
- Locks (fcntl and flock) are left to the kernel, which handles them locally because powerfs
  declares no lock operation: right for processes on one machine, which is all a vault has.
- Hard links are kept (one durable inode, several durable names), so a link() followed by an
  unlink() of the old name behaves as on a disk.
STATE/durable.json also carries counters ("stats") of the last mount: fsyncs seen, bytes and
names that were not durable when the power went, errors inside powerfs. Python standard library
and Debian's python3-fusepy only.
"""

import errno
import json
import os
import shutil
import stat
import sys
import traceback

try:
    import fusepy as fuse
except ImportError:
    import fuse  # the name pip installs fusepy under


class PowerFS:
    use_ns = True

    def __init__(self, state, seed=None):
        self.state = os.path.abspath(state)
        self.live = os.path.join(self.state, "live")
        self.inode_dir = os.path.join(self.state, "inodes")
        self.meta_path = os.path.join(self.state, "durable.json")
        self.fh_ino = {}  # open file handle -> live inode number
        self.dirty = {}  # live inode -> list of [start, end) written since its last fsync
        self.trunc = {}  # live inode -> smallest size it was truncated to since its last fsync
        self.ids = {}  # live inode -> durable inode id
        self.stats = {"fsync": 0, "fsyncdir": 0, "internal_errors": 0}
        # fusepy registers an operation only if the object has an attribute of that name
        for name in dir(self):
            if name.startswith("op_"):
                setattr(self, name[3:], getattr(self, name))
        os.makedirs(self.inode_dir, exist_ok=True)
        if os.path.exists(self.meta_path):
            with open(self.meta_path) as f:
                meta = json.load(f)
            self.nodes = {int(k): v for k, v in meta["nodes"].items()}
            self.next_id = meta["next_id"]
            self.stats["mounts"] = meta.get("stats", {}).get("mounts", 0) + 1
        else:
            self.nodes = {0: {"kind": "d", "mode": 0o755, "entries": {}}}
            self.next_id = 1
            self.stats["mounts"] = 1
            if seed:
                self._import(seed, 0)
        self._materialise()

    # -- durable state ------------------------------------------------------------------------

    def _new_id(self, kind, mode):
        i = self.next_id
        self.next_id += 1
        node = {"kind": kind, "mode": mode}
        if kind == "d":
            node["entries"] = {}
        elif kind == "f":
            open(os.path.join(self.inode_dir, str(i)), "wb").close()
        self.nodes[i] = node
        return i

    def _import(self, src, dir_id):
        """A seed directory goes in as fully durable (what a synced disk held before the test)."""
        for name in sorted(os.listdir(src)):
            p = os.path.join(src, name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                i = self._new_id("d", stat.S_IMODE(st.st_mode))
                self._import(p, i)
            elif stat.S_ISREG(st.st_mode):
                i = self._new_id("f", stat.S_IMODE(st.st_mode))
                shutil.copyfile(p, os.path.join(self.inode_dir, str(i)))
            elif stat.S_ISLNK(st.st_mode):
                i = self._new_id("l", 0o777)
                self.nodes[i]["target"] = os.readlink(p)
            else:
                continue
            self.nodes[dir_id]["entries"][name] = i

    def _materialise(self):
        """Rebuilds STATE/live from the durable state alone: what the disk holds after the cut."""
        if os.path.exists(self.live):
            shutil.rmtree(self.live)
        os.mkdir(self.live, self.nodes[0]["mode"])
        self.ids = {os.lstat(self.live).st_ino: 0}
        placed = {0: self.live}
        todo = [0]
        while todo:
            d = todo.pop()
            for name, i in sorted(self.nodes[d]["entries"].items()):
                node = self.nodes[i]
                p = os.path.join(placed[d], name)
                if node["kind"] == "d":
                    if i in placed:
                        continue  # a directory reached twice (a split rename): keep the first
                    os.mkdir(p, node["mode"])
                    todo.append(i)
                elif node["kind"] == "f":
                    if i in placed:
                        os.link(placed[i], p)
                        continue
                    shutil.copyfile(os.path.join(self.inode_dir, str(i)), p)
                    os.chmod(p, node["mode"])
                else:
                    os.symlink(node["target"], p)
                placed[i] = p
                self.ids[os.lstat(p).st_ino] = i
            os.chmod(placed[d], self.nodes[d]["mode"])

    def save(self):
        pending_bytes = sum(e - s for ranges in self.dirty.values() for s, e in ranges)
        self.stats["lost_bytes"] = pending_bytes
        self.stats["lost_files"] = sum(1 for r in self.dirty.values() if r) + len(self.trunc)
        self.stats["lost_names"] = self._count_volatile_names()
        tmp = self.meta_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"next_id": self.next_id, "nodes": self.nodes, "stats": self.stats}, f)
        os.replace(tmp, self.meta_path)

    def _count_volatile_names(self):
        """Names in live that differ from their directory's durable entries (lost at the cut)."""
        n = 0
        for dirpath, dirs, files in os.walk(self.live):
            i = self.ids.get(os.lstat(dirpath).st_ino)
            durable = self.nodes[i]["entries"] if i is not None and self.nodes[i]["kind"] == "d" else {}
            names = set(dirs) | set(files)
            for name in names:
                if durable.get(name) != self.ids.get(os.lstat(os.path.join(dirpath, name)).st_ino):
                    n += 1
            n += len(set(durable) - names)
        return n

    def _id_of(self, st):
        i = self.ids.get(st.st_ino)
        if i is None:
            if stat.S_ISDIR(st.st_mode):
                kind = "d"
            elif stat.S_ISLNK(st.st_mode):
                kind = "l"
            else:
                kind = "f"
            i = self._new_id(kind, stat.S_IMODE(st.st_mode))
            self.ids[st.st_ino] = i
        return i

    def _forget(self, ino):
        """The live inode is gone (or its number is about to be reused): drop what was tracked."""
        self.ids.pop(ino, None)
        self.dirty.pop(ino, None)
        self.trunc.pop(ino, None)

    def _sync_file(self, fd):
        st = os.fstat(fd)
        i = self._id_of(st)
        node = self.nodes[i]
        node["mode"] = stat.S_IMODE(st.st_mode)
        ranges = sorted(self.dirty.pop(st.st_ino, []))
        cut = self.trunc.pop(st.st_ino, None)
        with open(os.path.join(self.inode_dir, str(i)), "r+b") as out:
            if cut is not None:
                out.truncate(cut)
            end_done = 0
            for s, e in ranges:
                s = max(s, end_done)
                e = min(e, st.st_size)
                if s >= e:
                    continue
                out.seek(s)
                pos = s
                while pos < e:
                    chunk = os.pread(fd, min(e - pos, 1 << 20), pos)
                    if not chunk:
                        break
                    out.write(chunk)
                    pos += len(chunk)
                end_done = e
            out.truncate(st.st_size)

    def _sync_dir(self, path):
        st = os.lstat(path)
        i = self._id_of(st)
        entries = {}
        for name in os.listdir(path):
            cst = os.lstat(os.path.join(path, name))
            c = self._id_of(cst)
            node = self.nodes[c]
            if node["kind"] == "l":
                node.setdefault("target", os.readlink(os.path.join(path, name)))
            else:
                node["mode"] = stat.S_IMODE(cst.st_mode)
            entries[name] = c
        self.nodes[i]["entries"] = entries
        self.nodes[i]["mode"] = stat.S_IMODE(st.st_mode)

    def _note_write(self, ino, s, e):
        ranges = self.dirty.setdefault(ino, [])
        if ranges and ranges[-1][0] <= s <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], e)
        else:
            ranges.append([s, e])
            if len(ranges) > 4096:  # many scattered pages (SQLite): merge what overlaps
                ranges.sort()
                merged = [ranges[0]]
                for r in ranges[1:]:
                    if r[0] <= merged[-1][1]:
                        merged[-1][1] = max(merged[-1][1], r[1])
                    else:
                        merged.append(r)
                self.dirty[ino] = merged

    def _note_truncate(self, ino, old_size, length):
        if length < old_size:
            self.trunc[ino] = min(self.trunc.get(ino, length), length)
            ranges = self.dirty.get(ino)
            if ranges:
                self.dirty[ino] = [[s, min(e, length)] for s, e in ranges if s < length]

    # -- FUSE operations ----------------------------------------------------------------------

    def __call__(self, op, *args):
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            raise fuse.FuseOSError(errno.ENOSYS)
        try:
            return fn(*args)
        except OSError:
            raise
        except Exception:
            self.stats["internal_errors"] += 1
            traceback.print_exc()
            raise fuse.FuseOSError(errno.EIO)

    def _p(self, path):
        if path is None:  # a call by name on a file unlinked while open (hard_remove)
            raise fuse.FuseOSError(errno.ENOENT)
        return os.path.join(self.live, path.lstrip("/"))

    def op_init(self, path):
        pass

    def op_destroy(self, path):
        self.save()

    def op_getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None and fh in self.fh_ino else os.lstat(self._p(path))
        d = {k: getattr(st, k) for k in ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size",
                                          "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blocks")}
        # fusepy (use_ns) reads st_atime/st_mtime/st_ctime as nanoseconds
        d["st_atime"], d["st_mtime"], d["st_ctime"] = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        return d

    def op_access(self, path, amode):
        if not os.access(self._p(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def op_readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def op_opendir(self, path):
        return 0

    def op_releasedir(self, path, fh):
        return 0

    def op_readlink(self, path):
        return os.readlink(self._p(path))

    def op_statfs(self, path):
        sv = os.statvfs(self.live)
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                            "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def op_chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def op_chown(self, path, uid, gid):
        os.lchown(self._p(path), uid, gid)

    def op_utimens(self, path, times=None):
        if times is None:
            os.utime(self._p(path), follow_symlinks=False)
        else:
            os.utime(self._p(path), ns=times, follow_symlinks=False)

    def op_mkdir(self, path, mode):
        p = self._p(path)
        os.mkdir(p, mode)
        self._forget(os.lstat(p).st_ino)

    def op_rmdir(self, path):
        p = self._p(path)
        ino = os.lstat(p).st_ino
        os.rmdir(p)
        self._forget(ino)

    def op_symlink(self, target, source):
        p = self._p(target)
        os.symlink(source, p)
        self._forget(os.lstat(p).st_ino)

    def op_link(self, target, source):
        os.link(self._p(source), self._p(target))

    def op_unlink(self, path):
        p = self._p(path)
        st = os.lstat(p)
        os.unlink(p)
        if st.st_nlink <= 1 and st.st_ino not in self.fh_ino.values():
            self._forget(st.st_ino)
        elif st.st_nlink <= 1:
            self.ids.pop(st.st_ino, None)  # still open: later syncs go to an unnamed inode

    def op_rename(self, old, new):
        po, pn = self._p(old), self._p(new)
        try:
            victim = os.lstat(pn)
        except FileNotFoundError:
            victim = None
        src = os.lstat(po)
        os.rename(po, pn)
        if victim is not None and victim.st_ino != src.st_ino and victim.st_nlink <= 1:
            if victim.st_ino in self.fh_ino.values():
                self.ids.pop(victim.st_ino, None)
            else:
                self._forget(victim.st_ino)

    def op_mknod(self, path, mode, dev):
        p = self._p(path)
        os.mknod(p, mode, dev)
        self._forget(os.lstat(p).st_ino)

    def op_create(self, path, mode, fi=None):
        p = self._p(path)
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        ino = os.fstat(fd).st_ino
        self._forget(ino)
        self.fh_ino[fd] = ino
        return fd

    def op_open(self, path, flags):
        # A writer's handle is opened read-write: a sync reads the dirty ranges back through it.
        # No O_APPEND: the kernel sends the offsets of appends, and pwrite would ignore them.
        acc = os.O_RDONLY if flags & os.O_ACCMODE == os.O_RDONLY else os.O_RDWR
        fd = os.open(self._p(path), acc | (flags & os.O_TRUNC) | os.O_CLOEXEC)
        st = os.fstat(fd)
        self.fh_ino[fd] = st.st_ino
        if flags & os.O_TRUNC:
            self._note_truncate(st.st_ino, max(st.st_size, 1 << 62), 0)
        return fd

    def op_read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def op_write(self, path, data, offset, fh):
        n = os.pwrite(fh, data, offset)
        self._note_write(self.fh_ino[fh], offset, offset + n)
        return n

    def op_truncate(self, path, length, fh=None):
        if fh is not None and fh in self.fh_ino:
            st = os.fstat(fh)
            os.ftruncate(fh, length)
        else:
            p = self._p(path)
            st = os.lstat(p)
            os.truncate(p, length)
        self._note_truncate(st.st_ino, st.st_size, length)

    def op_flush(self, path, fh):
        return 0

    def op_release(self, path, fh):
        self.fh_ino.pop(fh, None)
        os.close(fh)

    def op_fsync(self, path, datasync, fh):
        self.stats["fsync"] += 1
        self._sync_file(fh)

    def op_fsyncdir(self, path, datasync, fh):
        self.stats["fsyncdir"] += 1
        self._sync_dir(self._p(path))


def main(argv):
    seed = None
    if len(argv) >= 2 and argv[0] == "--seed":
        seed, argv = argv[1], argv[2:]
    if len(argv) != 2:
        print("usage: powerfs.py [--seed DIR] STATE MOUNTPOINT", file=sys.stderr)
        return 2
    fs = PowerFS(argv[0], seed)
    # hard_remove: an unlinked open file is not renamed to .fuse_hidden* (it would be a name the
    # program never made); use_ino: st_ino is the backing inode, as programs expect it stable.
    fuse.FUSE(fs, argv[1], foreground=True, nothreads=True, hard_remove=True, use_ino=True,
              fsname="powerfs", subtype="powerfs")
    return 1 if fs.stats["internal_errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
