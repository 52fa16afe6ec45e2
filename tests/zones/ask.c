/* tests/zones/ask.c - asking a store a question, for the zones tests. */
#include "tests/zones/ask.h"

#include <stdbool.h> /* before ldns, which would make bool a signed char */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "dns/wire.h"
#include "tests/support/support.h"
#include "zones/answer.h"

ldns_pkt *zones_test_ask(const struct zones_store *store, const char *name, uint16_t type,
                         bool any_in_full)
{
    static uint8_t pkt[DNS_MAX_MSG], out[DNS_MAX_MSG];
    size_t len = support_query_wire(pkt, sizeof(pkt), name, type, DNS_CLASS_IN, 7, 1232);
    struct dns_query q;
    ck_assert_int_eq(dns_wire_parse_query(&q, pkt, len), DNS_PARSE_OK);
    struct zones_answer_config cfg = {.any_in_full = any_in_full};
    size_t n = 0;
    enum zones_answer_result r =
        zones_answer_query(store, &cfg, &q, pkt, out, sizeof(out), &n, NULL);
    ck_assert_int_eq(r, ZONES_ANSWER_DONE);
    return support_pkt_from_wire(out, n);
}

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *zones_test_addresses(const struct zones_store *store, const char *name, uint16_t type)
{
    static char text[4096];
    ldns_pkt *reply = zones_test_ask(store, name, type, true);
    text[0] = '\0';
    if (ldns_pkt_get_rcode(reply) == LDNS_RCODE_NXDOMAIN) {
        ldns_pkt_free(reply);
        return "NXDOMAIN";
    }
    const ldns_rr_list *answer = ldns_pkt_answer(reply);
    size_t n = ldns_rr_list_rr_count(answer);
    char **lines = calloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(answer, i);
        if (ldns_rr_get_type(rr) == (ldns_rr_type)type)
            lines[k++] = ldns_rdf2str(ldns_rr_rdf(rr, 0));
    }
    qsort(lines, k, sizeof(char *), compare_text);
    for (size_t i = 0; i < k; i++) {
        strncat(text, lines[i], sizeof(text) - strlen(text) - 2);
        if (i + 1 < k)
            strcat(text, "\n");
        free(lines[i]);
    }
    free(lines);
    ldns_pkt_free(reply);
    return text;
}
