/* dns/chain.c - runs a parsed query through the handlers and finishes it exactly once.
 *
 * Invariant: every request that enters dns_chain_handle() leaves through finish(), which
 * applies the size limit, runs the on_answer hooks of the handlers that ran (in reverse),
 * counts, logs and calls req->send() once. */
#include "dns/chain.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "dns/log.h"
#include "dns/server.h"

void dns_chain_init(struct dns_chain *chain)
{
    memset(chain, 0, sizeof(*chain));
}

int dns_chain_add(struct dns_chain *chain, const struct dns_handler *h)
{
    if (chain->n == DNS_CHAIN_MAX)
        return -1;
    chain->handlers[chain->n++] = *h;
    return 0;
}

void dns_chain_reply_error(struct dns_request *req, unsigned rcode, int ede)
{
    uint16_t ra = req->chain && req->chain->recursion_available ? DNS_FLAG_RA : 0;
    /* RA describes the server; it is meaningless outside QUERY (genreport "opcodeflg"). */
    if (DNS_OPCODE(req->q.flags) != DNS_OPCODE_QUERY)
        ra = 0;
    req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt, rcode, ra, ede);
}

void dns_chain_truncate(struct dns_request *req)
{
    if (req->ans_len <= req->max_size)
        return;
    /* An empty answer with TC, as NSD and Knot send: a partial RRset would be worse than none
     * (RFC 2181 §9), and the client retries over TCP. The question and OPT stay. */
    uint16_t flags = dns_wire_get_u16(req->ans + 2);
    unsigned rcode = DNS_RCODE(flags);
    uint16_t keep = (uint16_t)(flags & (DNS_FLAG_AA | DNS_FLAG_RA));
    req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt, rcode,
                                        (uint16_t)(keep | DNS_FLAG_TC), -1);
    if (req->chain)
        req->chain->stats.truncated++;
}

static unsigned reply_rcode(const struct dns_request *req)
{
    if (req->ans_len < DNS_HEADER_SIZE)
        return 0;
    unsigned rcode = DNS_RCODE(dns_wire_get_u16(req->ans + 2));
    /* BADVERS lives in the OPT's extended bits; our replies to it carry only that OPT. */
    if (rcode == 0 && req->q.has_edns && req->q.edns_version > 0)
        rcode = DNS_RCODE_BADVERS;
    return rcode;
}

/* A CoreDNS-style query log line: client, id, "type class name proto size do bufsize",
 * rcode, flags, reply size, duration. */
static void log_query(const struct dns_request *req, unsigned rcode)
{
    char peer[64];
    char name[DNS_MAX_NAME * 4 + 2] = ".";
    dns_server_format_addr(&req->peer, peer, sizeof(peer));
    if (req->q.has_question && dns_name_to_text(&req->q.qname, name, sizeof(name)) < 0)
        snprintf(name, sizeof(name), "?");
    double ms = (double)(uv_hrtime() - req->start_ns) / 1e6;
    log_write(LOG_LEVEL_INFO, "query",
              "client=%s id=%u type=%u class=%u name=%s proto=%s size=%zu do=%d bufsize=%u "
              "rcode=%s reply_size=%zu handler=%s duration_ms=%.3f",
              peer, req->q.id, req->q.qtype, req->q.qclass, name,
              req->proto == DNS_PROTO_TCP ? "tcp" : "udp", req->pkt_len,
              (req->q.edns_flags & DNS_EDNS_DO) ? 1 : 0, req->q.udp_size,
              dns_wire_rcode_name(rcode), req->ans_len, req->answered_by ? req->answered_by : "-",
              ms);
}

static void finish(struct dns_request *req)
{
    struct dns_chain *chain = req->chain;
    for (unsigned i = chain->n; i-- > 0;) {
        const struct dns_handler *h = &chain->handlers[i];
        if ((req->ran & (1U << i)) && h->on_answer)
            h->on_answer(h->self, req);
    }
    if (req->flags & DNS_REQ_REWRITTEN)
        dns_request_restore(req);
    dns_chain_truncate(req);
    unsigned rcode = reply_rcode(req);
    chain->stats.queries++;
    if (rcode < sizeof(chain->stats.by_rcode) / sizeof(chain->stats.by_rcode[0]))
        chain->stats.by_rcode[rcode]++;
    if (chain->log_queries)
        log_query(req, rcode);
    req->send(req);
}

static void run_from(struct dns_request *req)
{
    struct dns_chain *chain = req->chain;
    while (req->next < chain->n) {
        unsigned i = req->next++;
        const struct dns_handler *h = &chain->handlers[i];
        req->ran |= 1U << i;
        enum dns_verdict v = h->serve(h->self, req);
        if (v == DNS_PENDING)
            return;
        if (v == DNS_DONE) {
            req->answered_by = h->name;
            finish(req);
            return;
        }
    }
    /* No handler took it: a zone we do not serve and no forwarder (CoreDNS answers so too). */
    dns_chain_reply_error(req, DNS_RCODE_REFUSED, -1);
    finish(req);
}

void dns_chain_resume(struct dns_request *req, enum dns_verdict verdict)
{
    if (verdict == DNS_DONE) {
        req->answered_by = req->chain->handlers[req->next - 1].name;
        finish(req);
    } else {
        run_from(req);
    }
}

/* What the protocol alone decides, before any handler sees the query. */
static bool answer_by_protocol(struct dns_request *req, enum dns_parse_result r)
{
    switch (r) {
    case DNS_PARSE_OK:
        break;
    case DNS_PARSE_DROP:
        return false;
    case DNS_PARSE_FORMERR:
        dns_chain_reply_error(req, DNS_RCODE_FORMERR, -1);
        return true;
    case DNS_PARSE_NOTIMP:
        dns_chain_reply_error(req, DNS_RCODE_NOTIMP, -1);
        return true;
    case DNS_PARSE_BADVERS:
        dns_chain_reply_error(req, DNS_RCODE_BADVERS, -1);
        return true;
    }
    if (req->q.qclass != DNS_CLASS_IN && req->q.qclass != DNS_CLASS_CH &&
        req->q.qclass != DNS_CLASS_ANY) {
        dns_chain_reply_error(req, DNS_RCODE_REFUSED, -1);
        return true;
    }
    /* Zone transfers: not over UDP at all (RFC 5936 §4.2), and we serve none over TCP. */
    if (req->q.qtype == DNS_TYPE_AXFR || req->q.qtype == DNS_TYPE_IXFR) {
        dns_chain_reply_error(
            req, req->proto == DNS_PROTO_UDP ? DNS_RCODE_NOTIMP : DNS_RCODE_REFUSED, -1);
        return true;
    }
    if (req->q.qtype == DNS_TYPE_MAILA || req->q.qtype == DNS_TYPE_MAILB) {
        dns_chain_reply_error(req, DNS_RCODE_NOTIMP, -1);
        return true;
    }
    return false;
}

void dns_chain_handle(struct dns_chain *chain, struct dns_request *req)
{
    req->chain = chain;
    req->next = 0;
    req->ran = 0;
    req->flags = 0;
    req->ans_len = 0;
    req->answered_by = NULL;
    enum dns_parse_result r = dns_wire_parse_query(&req->q, req->pkt, req->pkt_len);
    if (req->proto == DNS_PROTO_TCP)
        req->max_size = DNS_MAX_MSG;
    else
        req->max_size = req->q.udp_size < DNS_MAX_UDP ? req->q.udp_size : DNS_MAX_UDP;
    if (r == DNS_PARSE_DROP) {
        chain->stats.dropped++;
        req->ans_len = 0;
        req->send(req);
        return;
    }
    if (answer_by_protocol(req, r)) {
        req->answered_by = "protocol";
        finish(req);
        return;
    }
    run_from(req);
}
