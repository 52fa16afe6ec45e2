/* dns/chaos.c - answers the CHAOS TXT names operators use to ask a server what it is. */
#include "dns/chaos.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void dns_chaos_init(struct dns_chaos *chaos, const char *version)
{
    snprintf(chaos->version, sizeof(chaos->version), "svcdns %s", version);
    if (gethostname(chaos->identity, sizeof(chaos->identity)) != 0)
        snprintf(chaos->identity, sizeof(chaos->identity), "svcdns");
    chaos->identity[sizeof(chaos->identity) - 1] = '\0';
}

static bool name_is(const struct dns_name *name, const char *text)
{
    struct dns_name n;
    return dns_name_from_text(&n, text) == 0 && dns_name_equal(&n, name);
}

enum dns_verdict dns_chaos_serve(void *self, struct dns_request *req)
{
    const struct dns_chaos *chaos = self;
    const struct dns_query *q = &req->q;
    if (q->qclass != DNS_CLASS_CH)
        return DNS_NEXT;
    const char *text = NULL;
    if (name_is(&q->qname, "version.bind") || name_is(&q->qname, "version.server"))
        text = chaos->version;
    else if (name_is(&q->qname, "hostname.bind") || name_is(&q->qname, "id.server"))
        text = chaos->identity;
    if (!text) {
        dns_chain_reply_error(req, DNS_RCODE_REFUSED, -1);
        return DNS_DONE;
    }
    struct dns_cursor c;
    dns_cursor_init(&c, req->ans, req->ans_cap);
    dns_wire_reply_begin(&c, q, req->pkt, DNS_FLAG_AA, DNS_RCODE_NOERROR);
    uint16_t an = 0;
    if (q->qtype == DNS_TYPE_TXT || q->qtype == DNS_TYPE_ANY) {
        size_t len = strlen(text);
        dns_cursor_put_u16(&c, DNS_QUESTION_PTR);
        dns_cursor_put_u16(&c, DNS_TYPE_TXT);
        dns_cursor_put_u16(&c, DNS_CLASS_CH);
        dns_cursor_put_u32(&c, 0);
        dns_cursor_put_u16(&c, (uint16_t)(len + 1));
        dns_cursor_put_u8(&c, (uint8_t)len);
        dns_cursor_put(&c, text, len);
        an = 1;
    }
    uint16_t ar = 0;
    if (q->has_edns) {
        dns_wire_put_opt(&c, q, 0, -1);
        ar = 1;
    }
    dns_wire_reply_counts(req->ans, an, 0, ar);
    req->ans_len = c.err ? 0 : c.pos;
    return DNS_DONE;
}
