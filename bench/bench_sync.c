/* bench_sync: what one durable commit's sync costs on the file system of a directory (where the token
 * store lives), and what of it is the file system's metadata rather than the data.
 *
 * A verdict's commit is a few WAL frames written in place into a WAL file at its steady size, then
 * fdatasync (synchronous=FULL). Three shapes, each the median of N commits a few ms apart:
 *   in place        three frames (12,360 bytes) over written blocks, then fdatasync: a daemon's commit
 *                   (logins arrive ms apart, so each write also moves the file's mtime);
 *   in place, same  the same write and fdatasync again at once, in the same timestamp tick: the mtime
 *   tick            does not move, so what is left is the data and the device's cache flush;
 *   appended        three frames past the end of the file, then fdatasync: a WAL still growing (new
 *                   blocks and a new size to write too).
 * The first less the second is what of a commit is the inode: on a file system that writes the inode
 * for fdatasync when only the times changed (ext4 without a journal does: ext4_fsync_nojournal writes
 * it synchronously, __sync_dirty_buffer), about half of the commit here; where a data sync leaves the
 * times alone, about 0. The second commit follows the first at once, so it usually falls in the same
 * tick (a commit takes well under one).
 * Not SQLite, not the store: the disk under it, so that a figure of bench/pam.sh or bench/radius.sh can
 * be read against the machine it came from.
 * Usage: bench_sync [-n COMMITS (300)] [-g GAP_MS (5)] DIR */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FRAME	(4096 + 24)	/* a WAL frame: its header and a 4 KiB page */
#define FRAMES	3		/* a verdict's commit: three frames a PAM code login (bench/README.md, session 5) */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static double p90(double *v, int n)
{
	return v[n * 9 / 10];	/* sorted by median() */
}

static void die(const char *what)
{
	fprintf(stderr, "bench_sync: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* one commit: FRAMES frames at off, then fdatasync; its time in us */
static double commit(int fd, const char *buf, off_t off)
{
	double t = now_us();

	if (pwrite(fd, buf, FRAMES * FRAME, off) != FRAMES * FRAME)
		die("pwrite");
	if (fdatasync(fd) != 0)
		die("fdatasync");
	return now_us() - t;
}

static void gap(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	int n = 300, gap_ms = 5, opt, fd;
	const char *dir;
	char path[4096], *buf, *zero;
	double *moved, *same, *grown;
	size_t size;
	struct statfs fs;

	while ((opt = getopt(argc, argv, "n:g:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'g': gap_ms = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_sync [-n COMMITS] [-g GAP_MS] DIR\n");
			return 2;
		}
	}
	if (optind != argc - 1 || n < 10 || gap_ms < 0) {
		fprintf(stderr, "usage: bench_sync [-n COMMITS >= 10] [-g GAP_MS] DIR\n");
		return 2;
	}
	dir = argv[optind];
	if (statfs(dir, &fs) != 0)
		die(dir);
	snprintf(path, sizeof(path), "%s/bench_sync.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		die(path);
	unlink(path);	/* the file goes with the process */
	size = (size_t)n * FRAMES * FRAME;
	buf = malloc(FRAMES * FRAME);
	zero = calloc(1, size);
	moved = calloc((size_t)n, sizeof(double));
	same = calloc((size_t)n, sizeof(double));
	grown = calloc((size_t)n, sizeof(double));
	if (buf == NULL || zero == NULL || moved == NULL || same == NULL || grown == NULL)
		die("malloc");
	memset(buf, 0x5a, FRAMES * FRAME);
	/* the steady WAL: every block written and synced once before the timed commits */
	if (pwrite(fd, zero, size, 0) != (ssize_t)size || fsync(fd) != 0)
		die("pwrite");
	free(zero);
	for (int i = 0; i < n; i++) {
		off_t off = (off_t)i * FRAMES * FRAME;

		gap(gap_ms);
		moved[i] = commit(fd, buf, off);
		same[i] = commit(fd, buf, off);
	}
	for (int i = 0; i < n; i++) {
		gap(gap_ms);
		grown[i] = commit(fd, buf, (off_t)(size + (size_t)i * FRAMES * FRAME));
	}
	close(fd);
	{
		double m = median(moved, n), s = median(same, n), g = median(grown, n);

		printf("file system of %s: type 0x%lx; %d commits of %d frames each, %d ms apart; median (p90) us\n",
		       dir, (unsigned long)fs.f_type, n, FRAMES, gap_ms);
		printf("in place:                %6.0f (%.0f)\n", m, p90(moved, n));
		printf("in place, same tick:     %6.0f (%.0f)\n", s, p90(same, n));
		printf("appended:                %6.0f (%.0f)\n", g, p90(grown, n));
		printf("in place - same tick: %.0f us a commit, %.2f as a ratio: the inode written for the times (about 0 where a data sync leaves the times alone)\n", m - s, m / s);
		printf("appended / in place:  %.2f\n", g / m);
	}
	free(buf);
	free(moved);
	free(same);
	free(grown);
	return 0;
}
