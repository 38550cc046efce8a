/* pki.h: the vault's own small PKI, kept in DATA/keys/ and used only by the signer process: a
 * private CA, one seal certificate per organisation and a TSA certificate, all ECDSA P-256.
 * Keys are PEM PKCS#8 files, mode 0600; certificates PEM, 0644. Every file is read and written
 * relative to a descriptor of the keys directory, so the same code runs in the locked-down
 * signer (openat/renameat on that descriptor only). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "macro.h"

#define PKI_CA_KEY "ca.key"
#define PKI_CA_CERT "ca.pem"
#define PKI_TSA_KEY "tsa.key"
#define PKI_TSA_CERT "tsa.pem"
/* seal-<organisation id>.key / .pem */
#define PKI_SEAL_PREFIX "seal-"

#define PKI_CA_DAYS 7305   /* 20 years */
#define PKI_LEAF_DAYS 3653 /* 10 years: the retention period of accounting records */
#define PKI_FILE_MAX 16384u
#define PKI_ORG_NAME_MAX 127u
#define PKI_EXPIRY_WARN_SECONDS (30 * 86400)

enum pki_leaf_kind {
        PKI_LEAF_SEAL, /* keyUsage digitalSignature + nonRepudiation */
        PKI_LEAF_TSA,  /* critical extendedKeyUsage timeStamping */
};

/* Loads key_name (a regular file of ours, mode 0600 or stricter) and cert_name from dirfd, and
 * checks that the key is the certificate's. -ENOENT when the key file is missing, -EPERM for loose
 * permissions, -EINVAL for a file that is not what it should be. */
int pki_load_pair(int dirfd, const char *key_name, const char *cert_name, EVP_PKEY **ret_key, X509 **ret_cert)
        _warn_unused_;
/* pki_load_pair() that also takes a key file naming a key on a PKCS#11 token when allow_token
 * (*ret_token tells which it was); otherwise such a file gives -EOPNOTSUPP. */
int pki_load_pair_ex(int dirfd, const char *key_name, const char *cert_name, bool allow_token, EVP_PKEY **ret_key,
                     X509 **ret_cert, bool *ret_token) _warn_unused_;
/* The certificates after the first in cert_name (an imported certificate's chain, issuer first,
 * written by coffre key import); an empty stack when the file holds one certificate. */
int pki_load_issuers(int dirfd, const char *cert_name, STACK_OF(X509) * *ret) _warn_unused_;
/* A new self-signed CA (CA:TRUE, keyCertSign + cRLSign) named common_name. */
int pki_make_ca(const char *common_name, EVP_PKEY **ret_key, X509 **ret_cert) _warn_unused_;
/* A new key and its certificate issued by the CA: subject CN=common_name (and O=organisation
 * when not NULL), valid for days. */
int pki_make_leaf(enum pki_leaf_kind kind, const char *common_name, const char *organisation, EVP_PKEY *ca_key,
                  X509 *ca_cert, int days, EVP_PKEY **ret_key, X509 **ret_cert) _warn_unused_;
/* Writes the key (0600) then the certificate (0644) into dirfd, each atomically and durably
 * (temporary name, fdatasync, rename, fsync of the directory). -EEXIST when the key exists. */
int pki_store_pair(int dirfd, const char *key_name, const char *cert_name, EVP_PKEY *key, X509 *cert) _warn_unused_;
/* Appends the PEM text of cert to b. */
int pki_cert_pem(X509 *cert, struct buf *b) _warn_unused_;
/* notAfter as Unix seconds. */
int pki_cert_not_after(const X509 *cert, int64_t *ret) _warn_unused_;
/* The file name of an organisation's seal key or certificate ("seal-<id>.key"/".pem"). */
int pki_seal_names(const char *org_id, char key_name[64], char cert_name[64]) _warn_unused_;
/* true for a name fit for a certificate subject: UTF-8, 1..PKI_ORG_NAME_MAX bytes, no control
 * characters. */
bool pki_org_name_is_valid(const char *name, size_t len);
