/* tests/support/support.c - ldns at the edges: building queries and reading replies in tests. */
#include "tests/support/support.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

ldns_pkt *support_pkt_from_wire(const uint8_t *wire, size_t len)
{
    ldns_pkt *pkt = NULL;
    ldns_status st = ldns_wire2pkt(&pkt, wire, len);
    ck_assert_msg(st == LDNS_STATUS_OK, "reply does not parse: %s", ldns_get_errorstr_by_id(st));
    return pkt;
}

size_t support_query_wire(uint8_t *out, size_t cap, const char *name, uint16_t type, uint16_t klass,
                          uint16_t id, int edns_size)
{
    ldns_pkt *pkt = NULL;
    ldns_status st =
        ldns_pkt_query_new_frm_str(&pkt, name, (ldns_rr_type)type, (ldns_rr_class)klass, LDNS_RD);
    ck_assert_msg(st == LDNS_STATUS_OK, "bad query name %s", name);
    ldns_pkt_set_id(pkt, id);
    if (edns_size > 0) {
        ldns_pkt_set_edns_udp_size(pkt, (uint16_t)edns_size);
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *support_section_text(const ldns_pkt *pkt, ldns_pkt_section section)
{
    ldns_rr_list *list = ldns_pkt_get_section_clone(pkt, section);
    size_t n = ldns_rr_list_rr_count(list);
    char **lines = calloc(n + 1, sizeof(*lines));
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        lines[i] = ldns_rr2str(ldns_rr_list_rr(list, i));
        size_t l = strlen(lines[i]);
        while (l > 0 && lines[i][l - 1] == '\n')
            lines[i][--l] = '\0';
        total += l + 1;
    }
    qsort(lines, n, sizeof(*lines), cmp_str);
    char *out = calloc(total, 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, "\n");
        strcat(out, lines[i]);
        free(lines[i]);
    }
    free(lines);
    ldns_rr_list_deep_free(list);
    return out;
}
