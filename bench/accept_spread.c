/* bench/accept_spread.c: how evenly new connections reach N loops.
 *
 * The gateway's `loops` can take connections two ways: each loop accepts
 * on its own SO_REUSEPORT listener (the kernel picks a listener by a hash
 * of the connection's addresses and ports), or one acceptor hands the
 * sockets out in turn.  This program measures the first on this kernel,
 * over loopback, and prints the second's spread beside it (in turn: the
 * loops differ by at most one connection, by construction).
 *
 * For each N (loops) and M (connections): N listeners on one port with
 * SO_REUSEPORT, M client connections, then every listener's accept queue
 * counted.  Repeated --runs times; the figures are the medians over runs
 * of: the busiest loop's share over the fair share (max / (M / N)), and
 * the idlest's (min / (M / N)).  1.00 for both is even.
 *
 * Prints one JSON object per line: {"bench","metric","value","unit"}.
 * Usage: accept_spread [--quick] [--runs R]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SH_BENCH_BUILDTYPE
#define SH_BENCH_BUILDTYPE "unknown"
#endif

#define MAX_LOOPS 16

static void die(const char *what)
{
    fprintf(stderr, "accept_spread: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void emit(const char *metric, double value, const char *unit)
{
    printf("{\"bench\":\"accept_spread\",\"metric\":\"%s\",\"value\":%.3f,"
           "\"unit\":\"%s\",\"cores\":%ld,\"build\":\"%s\"}\n",
           metric, value, unit, sysconf(_SC_NPROCESSORS_ONLN),
           SH_BENCH_BUILDTYPE);
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run: N reuseport listeners, M connections; counts[i] gets how many
 * listener i took. */
static void run_once(int n, int m, int counts[])
{
    int lfd[MAX_LOOPS], one = 1;
    int *cfd = calloc((size_t)m, sizeof *cfd);
    struct sockaddr_in sa;
    socklen_t slen = sizeof sa;

    if (cfd == NULL)
        die("calloc");
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (lfd[i] < 0 ||
            setsockopt(lfd[i], SOL_SOCKET, SO_REUSEPORT, &one,
                       sizeof one) != 0 ||
            bind(lfd[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
            listen(lfd[i], 4096) != 0)
            die("listen");
        if (i == 0 &&
            getsockname(lfd[0], (struct sockaddr *)&sa, &slen) != 0)
            die("getsockname");
        counts[i] = 0;
    }
    for (int k = 0; k < m; k++) {
        cfd[k] = socket(AF_INET, SOCK_STREAM, 0);
        if (cfd[k] < 0 ||
            connect(cfd[k], (struct sockaddr *)&sa, sizeof sa) != 0)
            die("connect");
    }
    for (int i = 0; i < n; i++) {
        int fd;

        while ((fd = accept(lfd[i], NULL, NULL)) >= 0) {
            counts[i]++;
            close(fd);
        }
        close(lfd[i]);
    }
    for (int k = 0; k < m; k++)
        close(cfd[k]);
    free(cfd);
}

int main(int argc, char **argv)
{
    static const int loops[] = { 2, 4, 8 };
    static const int conns[] = { 16, 100, 1000 };
    int runs = 21;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            runs = 3;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);
            runs = v > 0 && v < 10000 ? (int)v : runs;
        }
    }
    for (size_t a = 0; a < sizeof loops / sizeof *loops; a++) {
        for (size_t b = 0; b < sizeof conns / sizeof *conns; b++) {
            int n = loops[a], m = conns[b], counts[MAX_LOOPS];
            double *hi = calloc((size_t)runs, sizeof *hi);
            double *lo = calloc((size_t)runs, sizeof *lo);
            double fair = (double)m / n;
            char name[96];

            if (hi == NULL || lo == NULL)
                die("calloc");
            for (int r = 0; r < runs; r++) {
                int mx = 0, mn = m;

                run_once(n, m, counts);
                for (int i = 0; i < n; i++) {
                    mx = counts[i] > mx ? counts[i] : mx;
                    mn = counts[i] < mn ? counts[i] : mn;
                }
                hi[r] = mx / fair;
                lo[r] = mn / fair;
            }
            snprintf(name, sizeof name, "reuseport_max_share_loops%d_conns%d",
                     n, m);
            emit(name, median(hi, runs), "x fair");
            snprintf(name, sizeof name, "reuseport_min_share_loops%d_conns%d",
                     n, m);
            emit(name, median(lo, runs), "x fair");
            /* Handing out in turn: ceil and floor of the fair share. */
            snprintf(name, sizeof name, "in_turn_max_share_loops%d_conns%d",
                     n, m);
            emit(name, ((m + n - 1) / n) / fair, "x fair");
            snprintf(name, sizeof name, "in_turn_min_share_loops%d_conns%d",
                     n, m);
            emit(name, (m / n) / fair, "x fair");
            free(hi);
            free(lo);
        }
    }
    return 0;
}
