/* SPDX-License-Identifier: MIT */
/*
 * API keys of utxoiq-api. A key is "uiq_" followed by 64 hex digits of
 * randomness; its first UQ_AUTH_PREFIX_LEN characters are a public lookup
 * prefix and the database stores only the prefix and the SHA-256 of the whole
 * key. A request's key is looked up by prefix and its hash compared in
 * constant time, so neither the stored data nor response timing reveals a
 * key. Roles: user, service, admin; admin may call every route.
 *
 * Keys imported from the original web-api (any other token, of the shape its
 * secrets.token_urlsafe() keys have) were stored there as the unsalted
 * SHA-256 of the whole key, with no prefix that could identify one, so they
 * are looked up by that hash itself, as the original did: the hash of a
 * 256-bit random key reveals nothing, and an index lookup keyed by it leaks
 * no more than whether some key hashes to it. Nothing here is cached: every
 * request reads its key's row, so a revocation holds from the next request
 * on every instance that shares the database.
 */
#include "app.h"

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define UQ_AUTH_KEY_LEN 68
#define UQ_AUTH_PREFIX_LEN 12
/* token_urlsafe(32) gives 43 characters; the bounds leave room for keys the
 * original was given by hand, and keep a Firebase ID token (a JWT, ~900
 * characters with dots) from costing a database lookup. */
#define UQ_AUTH_LEGACY_MIN 16
#define UQ_AUTH_LEGACY_MAX 128

static void sha256_hex(const char *key, size_t len,
                       char out[UQ_DB_HASH_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[UQ_DB_HASH_HEX_LEN] = '\0';
}

/* 0 when key has the shape of one of ours. */
static int key_shape(const char *key)
{
    if (strlen(key) != UQ_AUTH_KEY_LEN || strncmp(key, "uiq_", 4) != 0) {
        return -1;
    }
    for (int i = 4; i < UQ_AUTH_KEY_LEN; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }
    }
    return 0;
}

/* 0 when key could be one of the original service's keys: URL-safe base64
 * (and the few other token characters a hand-made key might hold). */
static int legacy_shape(const char *key)
{
    size_t len = strlen(key);
    if (len < UQ_AUTH_LEGACY_MIN || len > UQ_AUTH_LEGACY_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.' ||
              c == '~')) {
            return -1;
        }
    }
    return 0;
}

static unsigned role_bit(const char *role)
{
    if (strcmp(role, "user") == 0) {
        return UQ_ROLE_USER;
    }
    if (strcmp(role, "service") == 0) {
        return UQ_ROLE_SERVICE;
    }
    if (strcmp(role, "admin") == 0) {
        return UQ_ROLE_ADMIN;
    }
    return 0;
}

int uq_auth_check(uq_app_t *app, uq_req_t *req, unsigned roles, uq_resp_t *res)
{
    const char *authz = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                    "Authorization");
    const char *xkey =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-API-Key");
    const char *key = NULL;
    char prefix[UQ_AUTH_PREFIX_LEN + 1];
    char hash[UQ_DB_HASH_HEX_LEN + 1];
    uq_db_api_key_t row;
    int st;

    if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0) {
        key = authz + 7;
        while (*key == ' ') {
            key++;
        }
    } else if (xkey != NULL) {
        key = xkey;
    }
    if (key == NULL) {
        uq_resp_error(res, 401, "missing API key");
        return -1;
    }
    if (key_shape(key) == 0) {
        memcpy(prefix, key, UQ_AUTH_PREFIX_LEN);
        prefix[UQ_AUTH_PREFIX_LEN] = '\0';
        sha256_hex(key, UQ_AUTH_KEY_LEN, hash);
        st = uq_db_api_key_lookup(app->db, prefix, &row);
    } else if (legacy_shape(key) == 0) {
        sha256_hex(key, strlen(key), hash);
        st = uq_db_api_key_lookup_hash(app->db, hash, &row);
    } else {
        uq_resp_error(res, 401, "invalid API key");
        return -1;
    }
    if (st == UQ_DB_NOTFOUND) {
        uq_resp_error(res, 401, "invalid API key");
        return -1;
    }
    if (st != UQ_DB_OK) {
        uq_resp_error(res, 503, "database unavailable");
        return -1;
    }
    if (strlen(row.hash_hex) != UQ_DB_HASH_HEX_LEN ||
        CRYPTO_memcmp(row.hash_hex, hash, UQ_DB_HASH_HEX_LEN) != 0) {
        uq_resp_error(res, 401, "invalid API key");
        return -1;
    }
    if (row.revoked_at != UQ_DB_NULL_TIME) {
        uq_resp_error(res, 401, "API key revoked");
        return -1;
    }
    unsigned have = role_bit(row.role);
    if (have != UQ_ROLE_ADMIN && (have & roles) == 0) {
        uq_resp_error(res, 403, "role '%s' may not call this endpoint",
                      row.role);
        return -1;
    }
    snprintf(req->user_id, sizeof(req->user_id), "%s", row.user_id);
    snprintf(req->role, sizeof(req->role), "%s", row.role);
    return 0;
}

int uq_auth_role_valid(const char *role)
{
    return role != NULL && role_bit(role) != 0;
}

int uq_auth_create_key(uq_app_t *app, const char *user, const char *role,
                       char *key, size_t cap, char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[32];
    char k[UQ_AUTH_KEY_LEN + 1];
    uq_db_api_key_t row;

    if (role_bit(role) == 0) {
        snprintf(err, errlen, "role '%s': must be user, service or admin",
                 role);
        return -1;
    }
    if (uq_text_check(user, strlen(user), 1, UQ_DB_ID_MAX, 0) != 0 ||
        strlen(user) > UQ_DB_ID_MAX) {
        snprintf(err, errlen, "user: 1 to %d printable characters",
                 UQ_DB_ID_MAX);
        return -1;
    }
    if (cap < sizeof(k)) {
        snprintf(err, errlen, "key buffer too small");
        return -1;
    }
    /* A prefix collision is refused by the UNIQUE constraint; try again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            snprintf(err, errlen, "getrandom failed");
            return -1;
        }
        memcpy(k, "uiq_", 4);
        for (size_t i = 0; i < sizeof(rnd); i++) {
            k[4 + 2 * i] = hex[rnd[i] >> 4];
            k[5 + 2 * i] = hex[rnd[i] & 15];
        }
        k[UQ_AUTH_KEY_LEN] = '\0';
        memset(&row, 0, sizeof(row));
        memcpy(row.prefix, k, UQ_AUTH_PREFIX_LEN);
        sha256_hex(k, UQ_AUTH_KEY_LEN, row.hash_hex);
        snprintf(row.user_id, sizeof(row.user_id), "%s", user);
        snprintf(row.role, sizeof(row.role), "%s", role);
        row.created_at = uq_now_us(app);
        row.last_used_at = UQ_DB_NULL_TIME;
        row.revoked_at = UQ_DB_NULL_TIME;
        int st = uq_db_api_key_create(app->db, &row);
        if (st == UQ_DB_OK) {
            memcpy(key, k, sizeof(k));
            OPENSSL_cleanse(k, sizeof(k));
            return 0;
        }
        if (st != UQ_DB_ECONSTRAINT) {
            snprintf(err, errlen, "store key: %s", uq_db_strerror(st));
            return -1;
        }
    }
    snprintf(err, errlen, "store key: prefix collisions");
    return -1;
}
