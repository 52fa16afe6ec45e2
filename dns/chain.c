/* dns/chain.c - runs a parsed query through the stages and finishes it exactly once.
 *
 * Invariant: every request that enters dns_chain_handle() leaves through finish(), which
 * puts a followed alias back, applies the size limit, counts, logs and calls req->send()
 * once. */
#include "dns/chain.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "dns/addr.h"
#include "dns/log.h"
#include "dns/rrl.h"

static const char *const stage_names[DNS_STAGE_COUNT] = {
    "protocol", "chaos", "search", "zones", "cache", "forward",
};

void dns_chain_init(struct dns_chain *chain)
{
    memset(chain, 0, sizeof(*chain));
}

void dns_chain_set(struct dns_chain *chain, enum dns_stage stage, const struct dns_stage_handler *h)
{
    if (stage > DNS_STAGE_PROTOCOL && stage < DNS_STAGE_COUNT)
        chain->stages[stage] = *h;
}

const char *dns_stage_name(enum dns_stage stage)
{
    return stage < DNS_STAGE_COUNT ? stage_names[stage] : "?";
}

void dns_chain_reply_error(struct dns_request *req, unsigned rcode, int ede)
{
    uint16_t ra = req->chain && req->chain->recursion_available ? DNS_FLAG_RA : 0;
    /* RA describes the server; it is meaningless outside QUERY (genreport "opcodeflg"). */
    if (DNS_OPCODE(req->q.flags) != DNS_OPCODE_QUERY)
        ra = 0;
    req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt, rcode, ra, ede);
}

/* The reply made an empty one with TC set: the question and OPT stay, and so do the rcode,
 * AA and RA. */
static void make_truncated(struct dns_request *req)
{
    req->ans_peak = req->ans_len; /* what the slot's buffer held (dns/server.c gives it back) */
    uint16_t flags = dns_wire_get_u16(req->ans + 2);
    unsigned rcode = DNS_RCODE(flags);
    uint16_t keep = (uint16_t)(flags & (DNS_FLAG_AA | DNS_FLAG_RA));
    req->ans_len = dns_wire_error_reply(req->ans, req->ans_cap, &req->q, req->pkt, rcode,
                                        (uint16_t)(keep | DNS_FLAG_TC), -1);
}

/* A reply longer than req->max_size becomes an empty reply with TC set, as NSD and Knot send:
 * a partial RRset would be worse than none (RFC 2181 §9), and the client retries over TCP. */
static void truncate_reply(struct dns_request *req)
{
    if (req->ans_len <= req->max_size)
        return;
    make_truncated(req);
    dns_counter_inc(&req->chain->stats.truncated);
}

/* --rrl: a UDP reply over its client prefix's rate is dropped, or slips out as an empty TC
 * reply (no larger than the query) that sends a real client to TCP, which is never limited.
 * Returns what was done, for the query log. */
static enum dns_rrl_action rate_limit(struct dns_request *req)
{
    if (req->chain->rrl == NULL || req->proto != DNS_PROTO_UDP || req->ans_len < DNS_HEADER_SIZE)
        return DNS_RRL_PASS;
    enum dns_rrl_action action = dns_rrl_check(req->chain->rrl, &req->peer, uv_hrtime());
    if (action == DNS_RRL_DROP)
        req->ans_len = 0;
    else if (action == DNS_RRL_SLIP)
        make_truncated(req);
    return action;
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

static const char *failure_name(enum dns_failure failure)
{
    switch (failure) {
    case DNS_FAILURE_SILENT:
        return "silent";
    case DNS_FAILURE_UPSTREAM:
        return "upstream";
    case DNS_FAILURE_OVERLOAD:
        return "overload";
    case DNS_FAILURE_NONE:
        break;
    }
    return "-";
}

/* A CoreDNS-style query log line: client, id, "type class name proto size do bufsize",
 * rcode, reply size, the stage that answered, why it failed, duration. */
static void log_query(const struct dns_request *req, unsigned rcode, enum dns_rrl_action rrl)
{
    static const char *const rrl_text[] = {"", " rrl=drop", " rrl=slip"};
    char peer[DNS_ADDR_TEXT_MAX];
    char name[DNS_NAME_TEXT_MAX] = ".";
    dns_addr_format(&req->peer, peer, sizeof(peer));
    if (req->q.has_question && dns_name_to_text(&req->q.qname, name, sizeof(name)) < 0)
        snprintf(name, sizeof(name), "?");
    double ms = (double)(uv_hrtime() - req->start_ns) / 1e6;
    log_write(LOG_LEVEL_INFO, "query",
              "client=%s id=%u type=%u class=%u name=%s proto=%s size=%zu do=%d bufsize=%u "
              "rcode=%s reply_size=%zu handler=%s failure=%s duration_ms=%.3f%s",
              peer, req->q.id, req->q.qtype, req->q.qclass, name,
              req->proto == DNS_PROTO_TCP ? "tcp" : "udp", req->pkt_len,
              (req->q.edns_flags & DNS_EDNS_DO) ? 1 : 0, req->q.udp_size,
              dns_wire_rcode_name(rcode), req->ans_len, dns_stage_name(req->stage),
              failure_name(req->failure), ms, rrl_text[rrl]);
}

static void finish(struct dns_request *req)
{
    struct dns_chain *chain = req->chain;
    if (req->alias.active)
        dns_request_end_alias(req);
    truncate_reply(req);
    unsigned rcode = reply_rcode(req);
    enum dns_rrl_action rrl = rate_limit(req);
    dns_counter_inc(&chain->stats.queries);
    /* Responses are counted as sent: a dropped one is counted by the limiter alone. */
    if (rrl != DNS_RRL_DROP &&
        rcode < sizeof(chain->stats.by_rcode) / sizeof(chain->stats.by_rcode[0]))
        dns_counter_inc(&chain->stats.by_rcode[rcode]);
    if (chain->log_queries)
        log_query(req, rcode, rrl);
    req->send(req);
}

/* Runs the stages from req->stage on. CHAOS-class queries have a plan of one stage. */
static void run_from(struct dns_request *req)
{
    struct dns_chain *chain = req->chain;
    unsigned last = req->q.qclass == DNS_CLASS_CH ? DNS_STAGE_CHAOS : DNS_STAGE_COUNT - 1;
    for (; req->stage <= last; req->stage++) {
        const struct dns_stage_handler *h = &chain->stages[req->stage];
        if (h->serve == NULL)
            continue;
        enum dns_verdict v = h->serve(h->self, req);
        if (v == DNS_PENDING)
            return;
        if (v == DNS_DONE) {
            finish(req);
            return;
        }
    }
    /* No stage took it: a zone we do not serve and no forwarder (CoreDNS answers so too). */
    req->stage = DNS_STAGE_PROTOCOL;
    dns_chain_reply_error(req, DNS_RCODE_REFUSED, -1);
    finish(req);
}

void dns_chain_resume(struct dns_request *req, enum dns_verdict verdict)
{
    if (verdict == DNS_DONE) {
        finish(req);
        return;
    }
    req->stage++;
    run_from(req);
}

/* What the protocol alone decides, before any stage sees the query. */
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
    req->stage = DNS_STAGE_PROTOCOL;
    req->failure = DNS_FAILURE_NONE;
    req->alias.active = false;
    req->ans_len = 0;
    req->ans_peak = 0;
    enum dns_parse_result r = dns_wire_parse_query(&req->q, req->pkt, req->pkt_len);
    if (req->proto == DNS_PROTO_TCP)
        req->max_size = DNS_MAX_MSG;
    else
        req->max_size = req->q.udp_size < DNS_MAX_UDP ? req->q.udp_size : DNS_MAX_UDP;
    if (r == DNS_PARSE_DROP) {
        dns_counter_inc(&chain->stats.dropped);
        req->ans_len = 0;
        req->send(req);
        return;
    }
    if (answer_by_protocol(req, r)) {
        finish(req);
        return;
    }
    req->stage = req->q.qclass == DNS_CLASS_CH ? DNS_STAGE_CHAOS : DNS_STAGE_SEARCH;
    run_from(req);
}
