// Package nsenter's C half: join mount/user (and other) namespaces before the
// Go runtime starts.
//
// Why this exists: setns(2) refuses CLONE_NEWUSER and CLONE_NEWNS for a
// multithreaded caller (EINVAL), and a Go process is multithreaded before
// main.main runs. husk's shim joins the pid/net/ipc/uts/cgroup namespaces
// itself on a locked thread, but for the mount and user namespaces the
// re-executed shim binary must join them here, in an ELF constructor that runs
// while the process is still single-threaded (the same trick as runc's
// nsenter).
//
// Contract (the Go side is the only producer of _HUSK_NSENTER):
//   - _HUSK_NSENTER unset: return at once, the only work being one getenv().
//   - _HUSK_NSENTER="type:path[,type:path...]": the whole value is validated
//     first, then every entry is joined in order with
//     setns(open(path, O_RDONLY|O_CLOEXEC), CLONE_NEW<type>).
//     Types: user mnt pid net ipc uts cgroup time. Paths must be absolute;
//     the value must be under 4096 bytes with at most 16 entries.
//     Credentials are never changed (the Go side switches users). After a mnt
//     join, chdir("/") (setns already moves root and cwd; this just makes the
//     intent explicit). Then unsetenv("_HUSK_NSENTER") and return.
//   - _HUSK_CGROUP_FDS="fd[,fd...]" (checked first, whether or not
//     _HUSK_NSENTER is set): each fd is a cgroup v1 `tasks` file the parent
//     opened for writing; "0" is written to it (the calling, only, thread
//     joins that cgroup) and it is closed. Then unsetenv("_HUSK_CGROUP_FDS").
//   - Any failure (including an empty or malformed value): write one line
//       {"type":"error","step":"nsenter","errno":N,"msg":"..."}\n
//     to fd 3 (the sync socket), or to fd 2 if fd 3 cannot be written, and
//     _exit(1). Fail closed: never run in the wrong namespaces.
//
// Only the stack is used; no allocation happens.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void husk_nsenter(void);

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define HUSK_ENV "_HUSK_NSENTER"
#define HUSK_CGROUP_ENV "_HUSK_CGROUP_FDS"
#define HUSK_SYNC_FD 3
#define HUSK_MAX_VALUE 4096 // whole env value
#define HUSK_MAX_ENTRIES 16

static const struct {
	const char *name;
	int flag;
} husk_ns_types[] = {
	// pid and time joins only take effect for children (as for any setns).
	{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},	{"pid", CLONE_NEWPID},
	{"net", CLONE_NEWNET},	 {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
	{"cgroup", CLONE_NEWCGROUP},
	{"time", CLONE_NEWTIME},
};

// husk_fail reports `<what> "<entry>": <why or strerror(err)>` as one JSON
// line and exits.
static void __attribute__((noreturn))
husk_fail(int err, const char *what, const char *entry, const char *why)
{
	char raw[512], line[2048];
	size_t n = 0;
	int fd = HUSK_SYNC_FD;

	snprintf(raw, sizeof(raw), "%s \"%s\": %s", what, entry, why ? why : strerror(err));
	n = (size_t)snprintf(line, sizeof(line),
			     "{\"type\":\"error\",\"step\":\"nsenter\",\"errno\":%d,\"msg\":\"", err);
	// JSON-escape: quote and backslash; anything outside printable ASCII as
	// \u00XX, so the line is valid JSON (and UTF-8) whatever the input. Only
	// whole escapes are appended, so truncation keeps it valid.
	for (const unsigned char *p = (const unsigned char *)raw; *p && n < sizeof(line) - 8; p++) {
		if (*p == '"' || *p == '\\') {
			line[n++] = '\\';
			line[n++] = (char)*p;
		} else if (*p < 0x20 || *p >= 0x7f) {
			n += (size_t)snprintf(line + n, 7, "\\u%04x", *p);
		} else {
			line[n++] = (char)*p;
		}
	}
	memcpy(line + n, "\"}\n", 3);
	n += 3;

	// The reader may be gone; a failed write must not become a SIGPIPE death.
	signal(SIGPIPE, SIG_IGN);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, line + off, n - off);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (fd == HUSK_SYNC_FD && off == 0)
			fd = STDERR_FILENO; // no sync fd: at least tell a human
		else
			break;
	}
	_exit(1);
}

// husk_env_copy copies the value of the environment variable name into buf
// and returns 1, or returns 0 if it is unset. An empty value, or one that
// does not fit, fails ("empty <what>", "<what> too long").
static int husk_env_copy(const char *name, char *buf, size_t size, const char *what)
{
	const char *value = getenv(name);
	char why[64];
	size_t len;

	if (value == NULL)
		return 0;
	len = strnlen(value, size);
	if (len == 0) {
		snprintf(why, sizeof(why), "empty %s", what);
		husk_fail(EINVAL, "parse", "", why);
	}
	if (len >= size) {
		snprintf(why, sizeof(why), "%s too long", what);
		husk_fail(E2BIG, "parse", "", why);
	}
	memcpy(buf, value, len + 1);
	return 1;
}

// husk_cgroup_join moves the (still single-threaded) process into the cgroup
// v1 hierarchies whose tasks files the parent opened: writing "0" to a tasks
// file moves the calling thread, which the kernel does without its global
// cgroup_threadgroup_rwsem (a cgroup.procs write takes it for writing, and
// the first writer after a quiet spell waits a whole RCU grace period:
// 5-20 ms). The permission check uses the credentials of the opener, so this
// works from inside a new user namespace too.
static void husk_cgroup_join(void)
{
	char buf[256];
	int fds[HUSK_MAX_ENTRIES];
	int count = 0;

	if (!husk_env_copy(HUSK_CGROUP_ENV, buf, sizeof(buf), "cgroup fd list"))
		return;

	// Validate the whole list before writing anything. Plain decimal only;
	// fds 0-2 are stdio and 3 is the sync socket.
	for (char *entry = buf;;) {
		char *comma = strchr(entry, ','), *end = NULL;
		long fd;

		if (comma != NULL)
			*comma = '\0';
		if (count == HUSK_MAX_ENTRIES)
			husk_fail(E2BIG, "parse", entry, "too many cgroup fds");
		errno = 0;
		fd = strtol(entry, &end, 10);
		if (entry[0] < '0' || entry[0] > '9' || errno != 0 || *end != '\0' ||
		    fd <= HUSK_SYNC_FD || fd > 1023)
			husk_fail(EINVAL, "parse", entry, "want a file descriptor number (4-1023)");
		fds[count++] = (int)fd;
		if (comma == NULL)
			break;
		entry = comma + 1;
	}

	for (int i = 0; i < count; i++) {
		ssize_t n;

		while ((n = write(fds[i], "0", 1)) < 0 && errno == EINTR)
			;
		if (n != 1) {
			int err = n < 0 ? errno : EIO;
			char link[64], target[256], num[16];
			ssize_t l;

			snprintf(link, sizeof(link), "/proc/self/fd/%d", fds[i]);
			snprintf(num, sizeof(num), "%d", fds[i]);
			l = readlink(link, target, sizeof(target) - 1);
			target[l > 0 ? l : 0] = '\0';
			husk_fail(err, "join cgroup", l > 0 ? target : num, NULL);
		}
		close(fds[i]);
	}
	unsetenv(HUSK_CGROUP_ENV);
}

__attribute__((constructor)) static void husk_constructor(void)
{
	// Cgroups first: the paths are the host's, and the process is counted
	// in the container's budget before it joins anything.
	husk_cgroup_join();
	husk_nsenter();
}

static void husk_nsenter(void)
{
	char buf[HUSK_MAX_VALUE];
	struct {
		const char *entry, *path;
		int flag;
	} ents[HUSK_MAX_ENTRIES];
	const size_t ntypes = sizeof(husk_ns_types) / sizeof(husk_ns_types[0]);
	int count = 0;

	if (!husk_env_copy(HUSK_ENV, buf, sizeof(buf), "value"))
		return;

	// Parse and validate the whole value before joining anything.

	for (char *entry = buf;;) {
		char *comma = strchr(entry, ','), *colon;
		size_t i;

		if (comma != NULL)
			*comma = '\0'; // entry is now the NUL-terminated "type:path"
		if (count == HUSK_MAX_ENTRIES)
			husk_fail(E2BIG, "parse", entry, "too many entries");
		colon = strchr(entry, ':');
		if (colon == NULL || colon[1] != '/')
			husk_fail(EINVAL, "parse", entry, "want type:/absolute/path");
		for (i = 0; i < ntypes; i++) {
			if ((size_t)(colon - entry) == strlen(husk_ns_types[i].name) &&
			    strncmp(entry, husk_ns_types[i].name, (size_t)(colon - entry)) == 0)
				break;
		}
		if (i == ntypes)
			husk_fail(EINVAL, "parse", entry, "unknown namespace type");
		ents[count].entry = entry;
		ents[count].path = colon + 1;
		ents[count].flag = husk_ns_types[i].flag;
		count++;
		if (comma == NULL)
			break;
		entry = comma + 1;
	}

	// Join in the given order (user before mnt when both are given, so the
	// mnt join is checked against the new user namespace's capabilities).
	for (int i = 0; i < count; i++) {
		int fd = open(ents[i].path, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			husk_fail(errno, "open", ents[i].entry, NULL);
		if (setns(fd, ents[i].flag) < 0)
			husk_fail(errno, "setns", ents[i].entry, NULL);
		close(fd);
		if (ents[i].flag == CLONE_NEWNS && chdir("/") < 0)
			husk_fail(errno, "chdir / after", ents[i].entry, NULL);
	}

	unsetenv(HUSK_ENV);
}
