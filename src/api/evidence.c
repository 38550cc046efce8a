/* evidence.c: GET /v1/documents/{id}/evidence: the document's ASiC-S evidence bundle
 * (core/evidence.h), streamed with its size known in advance. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "core/evidence.h"
#include "log.h"

static ssize_t evidence_fn(void *ud, uint64_t pos, uint8_t *buf, size_t max) {
        (void) pos; /* read in order, as libmicrohttpd does */
        return vault_evidence_read(ud, buf, max);
}

static void evidence_free(void *ud) {
        vault_evidence_free(ud);
}

int api_documents_evidence(struct http_request *r) {
        struct vault_evidence *e = NULL;
        char cd[96];
        int k = vault_document_evidence(http_vault(r), http_actor(r), http_param(r, "id"), http_request_id(r), &e);

        if (k == -ENOENT)
                return api_document_missing(r, "There is no such document."); /* 410 with its tombstone once erased */
        if (k == -ENOKEY)
                return http_respond_problem(
                        r, 409, "not-sealed", "No seal",
                        "The document was stored without a seal: there is no evidence bundle for it.");
        if (k < 0)
                return http_respond_errno(r, k, "cannot make the evidence bundle");
        /* the id, not the name: a name may carry personal data into logs and proxies */
        snprintf(cd, sizeof cd, "attachment; filename=\"%s.asics\"", vault_evidence_document(e)->id);
        if ((k = http_header_add(r, "Content-Disposition", cd)) < 0) {
                vault_evidence_free(e);
                return k;
        }
        return http_respond_stream(r, 200, "application/vnd.etsi.asic-s+zip", vault_evidence_size(e), evidence_fn, e,
                                   evidence_free);
}
