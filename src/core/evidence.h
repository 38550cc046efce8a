/* evidence.h: a document's evidence bundle, an ASiC-S container (ETSI EN 319 162-1): a ZIP
 * with "mimetype" first and stored, the document under its name, and in META-INF/ its CAdES
 * seal (signature.p7s), the seal and TSA certificate chains, the latest signed checkpoint of the
 * audit log with its time-stamp and the log's verifier key, the document's audit entries with their inclusion
 * proofs against that checkpoint (audit.json), and VERIFY.txt (how to check it all with openssl).
 * Layout: docs/formats.md, "Evidence bundle". Built as it is read: memory does not grow with the
 * document. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "store/store.h"

#define EVIDENCE_MIMETYPE "application/vnd.etsi.asic-s+zip"
#define EVIDENCE_SIGNATURE "META-INF/signature.p7s"
#define EVIDENCE_SEAL_CHAIN "META-INF/seal-chain.pem"
#define EVIDENCE_TSA_CHAIN "META-INF/tsa-chain.pem"
#define EVIDENCE_CHECKPOINT "META-INF/checkpoint.txt"
#define EVIDENCE_CHECKPOINT_TS "META-INF/checkpoint.tsr"
#define EVIDENCE_LOG_KEY "META-INF/log.vkey"
#define EVIDENCE_AUDIT "META-INF/audit.json"
#define EVIDENCE_VERIFY "META-INF/VERIFY.txt"
#define EVIDENCE_MAX_ENTRIES 1000u /* audit entries of one document carried in a bundle */

struct vault;
struct vault_actor;
struct vault_evidence;

/* Gathers document id's evidence, logs document.evidence (durable on return) and signs a
 * checkpoint covering it all. -ENOENT: no such document; -ENOKEY: the document has no seal. */
int vault_document_evidence(struct vault *v, const struct vault_actor *a, const char *id, const char *request_id,
                            struct vault_evidence **ret) _warn_unused_;
const struct store_document *vault_evidence_document(const struct vault_evidence *e);
/* The container's size in bytes, known before it is read. */
uint64_t vault_evidence_size(const struct vault_evidence *e);
/* The next bytes of the container, in order: count, 0 at the end, or a negative errno. */
ssize_t vault_evidence_read(struct vault_evidence *e, uint8_t *buf, size_t max);
void vault_evidence_free(struct vault_evidence *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct vault_evidence *, vault_evidence_free);
/* The name the document gets in the container: its own, with '/', '\\' and leading dots
 * replaced, and never "mimetype" or under META-INF/ (written into out, 256 bytes). */
void evidence_entry_name(const char *doc_name, char out[256]);
