/*
 * rtpload: paced RTP load through a relay, for bench/media.ts.
 *
 *   rtpload PLANFILE RATE_PPS DURATION_MS
 *
 * PLANFILE has one call per line: "LA LB RA RB" — party A binds 127.0.0.1:LA and sends to
 * 127.0.0.1:RA (the relay port facing A), party B binds LB and sends to RB. Both directions
 * carry RTP, so a call is two streams. Without a relay (the baseline) RA = LB and RB = LA.
 *
 * Packets are 172 bytes (12-byte RTP header, PT 0 = PCMU, + 160 bytes of payload: G.711 at
 * 20 ms), sent round-robin over the 2N streams at RATE_PPS in total, evenly paced (sequence
 * numbers +1, timestamps +160 per stream). The payload carries the CLOCK_MONOTONIC send time;
 * the receiver (the other party's socket, on the same host) reads the clock when it takes a
 * batch of packets from the socket and records the one-way time in a 1 µs histogram.
 *
 * First every stream sends a few warm-up packets (not counted) so the relay latches both
 * sides; then the measured run; then 300 ms to drain. Packets not received by then are lost.
 * Prints one JSON object. Bounded: DURATION_MS is capped at 120 s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PKT 172
#define HIST_US 1000000
#define BATCH 64
#define MAX_CALLS 20000
#define TICK_NS 250000LL

typedef struct {
  int fd;
  struct sockaddr_in dst;
  uint16_t seq;
  uint32_t ts;
  uint32_t ssrc;
} stream_t;

static uint32_t hist[HIST_US + 1];

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int bind_udp(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int sz = 8 << 20;
  /* Big buffers on the load generator's side, so that losses are the relay's. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static uint64_t pct(uint64_t total, double p) {
  if (total == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)total);
  if (want >= total) want = total - 1;
  uint64_t acc = 0;
  for (uint64_t i = 0; i <= HIST_US; i++) {
    acc += hist[i];
    if (acc > want) return i;
  }
  return HIST_US;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: rtpload PLANFILE RATE_PPS DURATION_MS\n");
    return 64;
  }
  double rate = atof(argv[2]);
  int64_t dur_ms = atoll(argv[3]);
  if (dur_ms > 120000) dur_ms = 120000;
  if (rate <= 0) rate = 1;
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror("plan");
    return 66;
  }
  static stream_t st[2 * MAX_CALLS];
  int n = 0;
  int la, lb, ra, rb;
  while (n < 2 * MAX_CALLS && fscanf(f, "%d %d %d %d", &la, &lb, &ra, &rb) == 4) {
    int fa = bind_udp(la), fb = bind_udp(lb);
    if (fa < 0 || fb < 0) {
      fprintf(stderr, "bind %d/%d: %s\n", la, lb, strerror(errno));
      return 71;
    }
    stream_t *a = &st[n++], *b = &st[n++];
    a->fd = fa;
    b->fd = fb;
    a->dst.sin_family = b->dst.sin_family = AF_INET;
    a->dst.sin_addr.s_addr = b->dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->dst.sin_port = htons((uint16_t)ra);
    b->dst.sin_port = htons((uint16_t)rb);
    a->ssrc = 0x10000000u + (uint32_t)n;
    b->ssrc = 0x20000000u + (uint32_t)n;
    a->seq = b->seq = (uint16_t)(n * 7);
    a->ts = b->ts = (uint32_t)n * 1000u;
  }
  fclose(f);
  if (n == 0) {
    fprintf(stderr, "empty plan\n");
    return 65;
  }
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, st[i].fd, &ev);
  }

  unsigned char pkt[PKT];
  memset(pkt, 0xd5, sizeof pkt); /* PCMU silence */
  pkt[0] = 0x80;
  pkt[1] = 0x00;

  static unsigned char rbuf[BATCH][256];
  static struct mmsghdr msgs[BATCH];
  static struct iovec iovs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iovs[i].iov_base = rbuf[i];
    iovs[i].iov_len = sizeof rbuf[i];
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t sent = 0, send_err = 0, recvd = 0, warm_recvd = 0, stray = 0, total_lat = 0;
  int64_t max_ns = 0;
  struct rusage ru0, ru1;

  /* Warm-up: 3 packets per stream, 1 ms apart per round, flagged (byte 20 = 1), not counted. */
  int64_t t_w = now_ns();
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < n; i++) {
      stream_t *s = &st[i];
      uint16_t seq = htons(s->seq++);
      uint32_t ts = htonl(s->ts += 160), ssrc = htonl(s->ssrc);
      memcpy(pkt + 2, &seq, 2);
      memcpy(pkt + 4, &ts, 4);
      memcpy(pkt + 8, &ssrc, 4);
      int64_t t = now_ns();
      memcpy(pkt + 12, &t, 8);
      pkt[20] = 1;
      sendto(s->fd, pkt, PKT, 0, (struct sockaddr *)&s->dst, sizeof s->dst);
    }
    usleep(1000);
  }
  /* Let the warm-up through, and discard it. */
  while (now_ns() - t_w < 300000000LL) {
    struct epoll_event evs[256];
    int k = epoll_wait(ep, evs, 256, 10);
    for (int e = 0; e < k; e++) {
      int r;
      while ((r = recvmmsg(st[evs[e].data.u32].fd, msgs, BATCH, MSG_DONTWAIT, NULL)) > 0) warm_recvd += (uint64_t)r;
    }
  }

  getrusage(RUSAGE_SELF, &ru0);
  pkt[20] = 0;
  const int64_t t0 = now_ns();
  const int64_t t_end = t0 + dur_ms * 1000000LL;
  const int64_t t_stop = t_end + 300000000LL;
  const double ns_per_pkt = 1e9 / rate;
  int next = 0;
  for (;;) {
    int64_t t = now_ns();
    if (t >= t_stop) break;
    int64_t next_send = -1;
    if (t < t_end) {
      uint64_t due = (uint64_t)((double)(t - t0) / ns_per_pkt) + 1;
      int burst = 0;
      while (sent < due && burst < 256) {
        stream_t *s = &st[next];
        next = (next + 1) % n;
        uint16_t seq = htons(s->seq++);
        uint32_t ts = htonl(s->ts += 160), ssrc = htonl(s->ssrc);
        memcpy(pkt + 2, &seq, 2);
        memcpy(pkt + 4, &ts, 4);
        memcpy(pkt + 8, &ssrc, 4);
        int64_t ts_ns = now_ns();
        memcpy(pkt + 12, &ts_ns, 8);
        if (sendto(s->fd, pkt, PKT, 0, (struct sockaddr *)&s->dst, sizeof s->dst) != PKT) send_err++;
        sent++;
        burst++;
      }
      next_send = t0 + (int64_t)((double)sent * ns_per_pkt);
    }
    /* Wait for packets until the next send is due (or the drain ends). */
    /* Sends are grouped in ticks of at least TICK_NS, which keeps the generator's own wake-ups
       (and CPU) low at low rates; each packet's latency is measured from its own send time. */
    int64_t until = next_send >= 0 ? next_send : t_stop;
    if (next_send >= 0 && until < t + TICK_NS) until = t + TICK_NS;
    int64_t wait_ns = until - now_ns();
    if (wait_ns < 0) wait_ns = 0;
    struct timespec to = {.tv_sec = wait_ns / 1000000000LL, .tv_nsec = wait_ns % 1000000000LL};
    struct epoll_event evs[256];
    int k = epoll_pwait2(ep, evs, 256, &to, NULL);
    for (int e = 0; e < k; e++) {
      int fd = st[evs[e].data.u32].fd;
      int r;
      while ((r = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL)) > 0) {
        int64_t tr = now_ns();
        for (int j = 0; j < r; j++) {
          if (msgs[j].msg_len != PKT) {
            stray++;
            continue;
          }
          if (rbuf[j][20] == 1) {
            warm_recvd++;
            continue;
          }
          int64_t ts_ns;
          memcpy(&ts_ns, rbuf[j] + 12, 8);
          if (ts_ns < t0) {
            stray++;
            continue;
          }
          int64_t d = tr - ts_ns;
          if (d > max_ns) max_ns = d;
          int64_t us = d / 1000;
          if (us > HIST_US) us = HIST_US;
          if (us < 0) us = 0;
          hist[us]++;
          total_lat += (uint64_t)us;
          recvd++;
        }
      }
    }
  }
  getrusage(RUSAGE_SELF, &ru1);
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  double secs = (double)(t_end - t0) / 1e9;
  printf("{\"streams\":%d,\"rate\":%.0f,\"durationS\":%.3f,\"sent\":%llu,\"received\":%llu,\"sendErrors\":%llu,\"stray\":%llu,"
         "\"warmReceived\":%llu,\"loss\":%.6f,\"p50us\":%llu,\"p90us\":%llu,\"p99us\":%llu,\"p999us\":%llu,\"maxUs\":%lld,"
         "\"meanUs\":%.1f,\"cpuS\":%.3f}\n",
         n, rate, secs, (unsigned long long)sent, (unsigned long long)recvd, (unsigned long long)send_err, (unsigned long long)stray,
         (unsigned long long)warm_recvd, sent ? 1.0 - (double)recvd / (double)sent : 0.0, (unsigned long long)pct(recvd, 0.50),
         (unsigned long long)pct(recvd, 0.90), (unsigned long long)pct(recvd, 0.99), (unsigned long long)pct(recvd, 0.999),
         (long long)(max_ns / 1000), recvd ? (double)total_lat / (double)recvd : 0.0, cpu);
  return 0;
}
