/* tests/resolver/upstream_fake.c - the in-loop scripted upstream (UDP and TCP) and the reply
 * builder. Replies are written by hand from the query bytes so that each mode controls exactly
 * what goes on the wire; the builder uses ldns, which is fine at the edges of the tests. */
#include "tests/resolver/upstream_fake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <ldns/ldns.h>

#include "dns/wire.h"

struct tcp_conn {
    uv_tcp_t tcp;
    struct fake_upstream *f;
    uint8_t buf[1024];
    size_t len;
    uv_write_t write;
    uint8_t out[4096];
};

struct udp_out {
    uv_udp_send_t send;
    uint8_t data[1500];
};

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void udp_reply(struct fake_upstream *f, const struct sockaddr *to, const uint8_t *data,
                      size_t len)
{
    struct udp_out *o = malloc(sizeof(*o));
    ck_assert_ptr_nonnull(o);
    memcpy(o->data, data, len);
    o->send.data = o;
    uv_buf_t b = uv_buf_init((char *)o->data, (unsigned)len);
    ck_assert_int_eq(uv_udp_send(&o->send, &f->udp, &b, 1, to, on_udp_sent), 0);
}

/* Records what the query says; returns its parse. */
static bool note_query(struct fake_upstream *f, const uint8_t *q, size_t len, struct dns_query *out)
{
    if (dns_wire_parse_query(out, q, len) != DNS_PARSE_OK)
        return false;
    f->last_id = out->id;
    f->last_had_opt = out->has_edns;
    f->last_payload = out->has_edns ? out->udp_size : 0;
    f->last_do = out->has_edns && (out->edns_flags & DNS_EDNS_DO);
    dns_name_to_text(&out->qname, f->last_name, sizeof(f->last_name));
    return true;
}

/* Header and question of a reply to q, then n A records 192.0.2.<i> under the question name
 * (only for qtype A), then OPT when the query had one. */
static size_t answer(const struct dns_query *q, const uint8_t *pkt, uint8_t *out, size_t cap,
                     unsigned rcode, uint16_t extra, unsigned n)
{
    struct dns_cursor c;
    dns_cursor_init(&c, out, cap);
    dns_cursor_put_u16(&c, q->id);
    dns_cursor_put_u16(&c, (uint16_t)(DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA | extra | rcode));
    dns_cursor_put_u16(&c, 1);
    unsigned an = q->qtype == DNS_TYPE_A ? n : 0;
    dns_cursor_put_u16(&c, (uint16_t)an);
    dns_cursor_put_u16(&c, 0);
    dns_cursor_put_u16(&c, q->has_edns ? 1 : 0);
    dns_cursor_put(&c, pkt + DNS_HEADER_SIZE, (size_t)q->question_end - DNS_HEADER_SIZE);
    for (unsigned i = 0; i < an; i++) {
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, DNS_TYPE_A);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, 300);
        dns_cursor_put_u16(&c, 4);
        uint8_t a[4] = {192, 0, 2, (uint8_t)(i + 1)};
        dns_cursor_put(&c, a, 4);
    }
    if (q->has_edns) {
        dns_cursor_put_u8(&c, 0);
        dns_cursor_put_u16(&c, DNS_TYPE_OPT);
        dns_cursor_put_u16(&c, 1232);
        dns_cursor_put_u32(&c, 0);
        dns_cursor_put_u16(&c, 0);
    }
    ck_assert(!c.err);
    return c.pos;
}

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void spoof_burst(struct fake_upstream *f, const struct dns_query *q, const uint8_t *pkt,
                        const struct sockaddr *to)
{
    uint8_t out[1500];
    size_t n = answer(q, pkt, out, sizeof(out), 0, 0, 1);
    dns_wire_put_u16(out, (uint16_t)(q->id ^ 0x5a5a));
    udp_reply(f, to, out, n);
    /* The right ID with another question: the name's first letter changed. */
    dns_wire_put_u16(out, q->id);
    out[DNS_HEADER_SIZE + 1] ^= 0x01;
    udp_reply(f, to, out, n);
    uint8_t junk[40];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    udp_reply(f, to, junk, sizeof(junk));
}

static void on_udp_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    (void)flags;
    struct fake_upstream *f = udp->data;
    struct dns_query q;
    uint8_t out[1500];
    if (nread <= 0 || !addr || !note_query(f, (const uint8_t *)buf->base, (size_t)nread, &q)) {
        free(buf->base);
        return;
    }
    const uint8_t *pkt = (const uint8_t *)buf->base;
    f->udp_queries++;
    size_t n = 0;
    switch (f->mode) {
    case FAKE_ANSWER:
        n = answer(&q, pkt, out, sizeof(out), 0, 0, 1);
        break;
    case FAKE_SILENT:
        break;
    case FAKE_SERVFAIL:
        n = answer(&q, pkt, out, sizeof(out), DNS_RCODE_SERVFAIL, 0, 0);
        break;
    case FAKE_WRONGID:
        n = answer(&q, pkt, out, sizeof(out), 0, 0, 1);
        dns_wire_put_u16(out, (uint16_t)(q.id + 1));
        break;
    case FAKE_SPOOF_FIRST:
        spoof_burst(f, &q, pkt, addr);
        n = answer(&q, pkt, out, sizeof(out), 0, 0, 1);
        break;
    case FAKE_TC:
        n = answer(&q, pkt, out, sizeof(out), 0, DNS_FLAG_TC, 0);
        break;
    case FAKE_FORMERR_EDNS:
        n = answer(&q, pkt, out, sizeof(out), q.has_edns ? DNS_RCODE_FORMERR : 0, 0,
                   q.has_edns ? 0 : 1);
        break;
    case FAKE_MALFORMED:
        n = answer(&q, pkt, out, sizeof(out), 0, 0, 1);
        dns_wire_put_u16(out + (size_t)q.question_end + 10, 200); /* rdlength past the end */
        break;
    }
    if (n > 0)
        udp_reply(f, addr, out, n);
    free(buf->base);
}

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_tcp_written(uv_write_t *w, int status)
{
    (void)status;
    struct tcp_conn *c = w->data;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct tcp_conn *c = h->data;
    *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tcp_conn *c = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->len += (size_t)nread;
    if (c->len < 2 || c->len < 2 + (size_t)dns_wire_get_u16(c->buf))
        return;
    struct dns_query q;
    uv_read_stop(s);
    if (!note_query(c->f, c->buf + 2, dns_wire_get_u16(c->buf), &q)) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->f->tcp_queries++;
    size_t n = answer(&q, c->buf + 2, c->out + 2, sizeof(c->out) - 2, 0, 0, 60);
    dns_wire_put_u16(c->out, (uint16_t)n);
    uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)(n + 2));
    c->write.data = c;
    ck_assert_int_eq(uv_write(&c->write, s, &b, 1, on_tcp_written), 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct fake_upstream *f = server->data;
    ck_assert_int_eq(status, 0);
    struct tcp_conn *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->f = f;
    uv_tcp_init(f->loop, &c->tcp);
    c->tcp.data = c;
    ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read);
}

/* A UDP socket and (tcp) a listening TCP socket on one kernel-chosen port of 127.0.0.1, as
 * a real server has them. The port the kernel picks for one protocol may be taken in the
 * other, so the pair is tried again until both bind. */
static void bind_pair(bool tcp, int *udp_fd, int *tcp_fd, struct sockaddr_in *addr)
{
    for (int tries = 0; tries < 100; tries++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(u, 0);
        ck_assert_int_eq(bind(u, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(getsockname(u, (struct sockaddr *)&a, &len), 0);
        int t = -1;
        if (tcp) {
            t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            ck_assert_int_ge(t, 0);
            if (bind(t, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(t, 16) != 0) {
                close(t);
                close(u);
                continue;
            }
        }
        *udp_fd = u;
        *tcp_fd = t;
        *addr = a;
        return;
    }
    ck_abort_msg("no port free for both UDP and TCP on 127.0.0.1");
}

void fake_upstream_start(struct fake_upstream *f, uv_loop_t *loop, enum fake_mode mode, bool tcp)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->mode = mode;
    f->tcp = tcp;
    int udp_fd;
    int tcp_fd;
    struct sockaddr_in a;
    bind_pair(tcp, &udp_fd, &tcp_fd, &a);
    memcpy(&f->addr, &a, sizeof(a));
    ck_assert_int_eq(uv_udp_init(loop, &f->udp), 0);
    f->udp.data = f;
    ck_assert_int_eq(uv_udp_open(&f->udp, udp_fd), 0);
    ck_assert_int_eq(uv_udp_recv_start(&f->udp, on_udp_alloc, on_udp_recv), 0);
    if (!tcp)
        return;
    ck_assert_int_eq(uv_tcp_init(loop, &f->listener), 0);
    f->listener.data = f;
    ck_assert_int_eq(uv_tcp_open(&f->listener, tcp_fd), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&f->listener, 16, on_connection), 0);
}

void fake_upstream_close(struct fake_upstream *f)
{
    if (!uv_is_closing((uv_handle_t *)&f->udp))
        uv_close((uv_handle_t *)&f->udp, NULL);
    if (f->tcp && !uv_is_closing((uv_handle_t *)&f->listener))
        uv_close((uv_handle_t *)&f->listener, NULL);
}

static void push_rrs(ldns_pkt *pkt, ldns_pkt_section section, const char *const *lines)
{
    for (size_t i = 0; lines && lines[i]; i++) {
        ldns_rr *rr = NULL;
        ldns_status st = ldns_rr_new_frm_str(&rr, lines[i], 0, NULL, NULL);
        ck_assert_msg(st == LDNS_STATUS_OK, "bad RR text: %s", lines[i]);
        ldns_pkt_push_rr(pkt, section, rr);
    }
}

size_t fake_reply(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
                  unsigned rcode, const char *const *answer_rrs, const char *const *authority,
                  const char *const *additional, uint16_t flags, bool opt)
{
    ldns_pkt *pkt = ldns_pkt_new();
    ldns_rdf *owner = ldns_dname_new_frm_str(qname);
    ck_assert_ptr_nonnull(owner);
    ldns_rr *question = ldns_rr_new();
    ldns_rr_set_question(question, true);
    ldns_rr_set_owner(question, owner);
    ldns_rr_set_type(question, (ldns_rr_type)qtype);
    ldns_rr_set_class(question, LDNS_RR_CLASS_IN);
    ldns_pkt_push_rr(pkt, LDNS_SECTION_QUESTION, question);
    ldns_pkt_set_id(pkt, id);
    ldns_pkt_set_qr(pkt, true);
    ldns_pkt_set_rd(pkt, true);
    ldns_pkt_set_ra(pkt, true);
    ldns_pkt_set_tc(pkt, (flags & DNS_FLAG_TC) != 0);
    ldns_pkt_set_aa(pkt, (flags & DNS_FLAG_AA) != 0);
    ldns_pkt_set_ad(pkt, (flags & DNS_FLAG_AD) != 0);
    ldns_pkt_set_rcode(pkt, (uint8_t)rcode);
    push_rrs(pkt, LDNS_SECTION_ANSWER, answer_rrs);
    push_rrs(pkt, LDNS_SECTION_AUTHORITY, authority);
    push_rrs(pkt, LDNS_SECTION_ADDITIONAL, additional);
    if (opt) {
        ldns_pkt_set_edns_udp_size(pkt, 1232);
        ldns_pkt_set_edns_data(pkt, ldns_rdf_new_frm_str(LDNS_RDF_TYPE_HEX, ""));
    }
    uint8_t *wire = NULL;
    size_t len = 0;
    ck_assert(ldns_pkt2wire(&wire, pkt, &len) == LDNS_STATUS_OK);
    ck_assert_uint_le(len, cap);
    memcpy(out, wire, len);
    free(wire);
    ldns_pkt_free(pkt);
    return len;
}

static bool own_is_authoritative(const void *self, const struct dns_name *name)
{
    (void)self;
    struct dns_name zone;
    dns_name_from_text(&zone, "local");
    return dns_name_is_subdomain(name, &zone);
}

static size_t own_answer(const void *self, const struct dns_query *q, const uint8_t *pkt,
                         uint8_t *out, size_t cap)
{
    if (!own_is_authoritative(self, &q->qname))
        return 0;
    struct dns_cursor c;
    static const uint8_t addr[4] = {10, 96, 0, 10};
    uint16_t an = q->qtype == DNS_TYPE_A;
    dns_cursor_init(&c, out, cap);
    dns_wire_reply_begin(&c, q, pkt, DNS_FLAG_AA, DNS_RCODE_NOERROR);
    if (an) {
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, DNS_TYPE_A);
        dns_cursor_put_u16(&c, DNS_CLASS_IN);
        dns_cursor_put_u32(&c, 5);
        dns_cursor_put_u16(&c, sizeof(addr));
        dns_cursor_put(&c, addr, sizeof(addr));
    }
    uint16_t ar = 0;
    if (q->has_edns) {
        dns_wire_put_opt(&c, q, DNS_RCODE_NOERROR, -1);
        ar = 1;
    }
    ck_assert(!c.err);
    dns_wire_reply_counts(out, an, 0, ar);
    return c.pos;
}

const struct dns_names fake_own_names = {NULL, NULL, own_answer, own_is_authoritative, NULL};
