/* The dashboard's paths, assets and browser credential: see dashboard.h. */
#include "admin/dashboard.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "util/pct.h"

const tg_asset_t *tg_admin_asset(const char *name)
{
    for (const tg_asset_t *a = tg_admin_assets; a->name; a++)
        if (strcmp(a->name, name) == 0) return a;
    return NULL;
}

const char *tg_admin_asset_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".json", "application/json"},
    };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t el = strlen(types[i].ext);
        if (n > el && strcmp(name + n - el, types[i].ext) == 0) return types[i].type;
    }
    return "application/octet-stream";
}

static int tenant_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

tg_dash_route_t tg_admin_dash_route(const char *path, char *out, size_t cap)
{
    static const char root[] = "/dashboard";
    if (cap) out[0] = '\0';
    if (strncmp(path, root, sizeof root - 1) != 0) return TG_DASH_NONE;
    const char *p = path + sizeof root - 1;
    if (!*p || strcmp(p, "/") == 0) return TG_DASH_PAGE;
    if (*p != '/') return TG_DASH_NONE; /* /dashboardx */
    p++;
    if (strncmp(p, "tenant/", 7) == 0) {
        char id[64];
        if (tg_pct_decode(p + 7, strlen(p + 7), id, sizeof id) == 0 && tenant_id_ok(id))
            return TG_DASH_PAGE;
        return TG_DASH_UNKNOWN;
    }
    if (strcmp(p, "api/overview") == 0) {
        if (cap <= strlen("overview")) return TG_DASH_UNKNOWN;
        strcpy(out, "overview");
        return TG_DASH_API;
    }
    if (strncmp(p, "api/tenant/", 11) == 0) {
        char id[64];
        if (tg_pct_decode(p + 11, strlen(p + 11), id, sizeof id) != 0 || !tenant_id_ok(id) ||
            cap < 7 + strlen(id) + 1)
            return TG_DASH_UNKNOWN;
        strcpy(out, "tenant/");
        strcat(out, id);
        return TG_DASH_API;
    }
    if (!strchr(p, '/') && tg_admin_asset(p) && strcmp(p, "index.html") != 0 && strlen(p) < cap) {
        strcpy(out, p);
        return TG_DASH_ASSET;
    }
    return TG_DASH_UNKNOWN;
}

void tg_admin_dash_cookie(const unsigned char *want, char out[65])
{
    static const char msg[] = "tollgate-dashboard";
    unsigned char mac[32];
    unsigned int ml = sizeof mac;
    static const unsigned char none[32];
    if (!HMAC(EVP_sha256(), want ? want : none, 32, (const unsigned char *)msg, sizeof msg - 1, mac,
              &ml))
        memset(mac, 0, sizeof mac);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(mac, sizeof mac);
}

int tg_admin_check_cookie(const char *value, size_t len, const unsigned char *want)
{
    /* Any tg_dash= pair of the header (cookie-pairs separated by "; "): a browser sends
     * every cookie of that name whose path matches, the most specific path first, so one
     * set by another service of the same host (cookies ignore the port) with Path=/ comes
     * after ours. Taking the last one let that cookie lock the dashboard out. */
    char expect[65], got[65];
    tg_admin_dash_cookie(want, expect);
    int ok = 0, compared = 0;
    size_t i = 0;
    while (value && i < len) {
        while (i < len && (value[i] == ' ' || value[i] == ';'))
            i++;
        size_t start = i;
        while (i < len && value[i] != ';')
            i++;
        size_t n = i - start;
        static const char name[] = TG_DASH_COOKIE "=";
        if (n >= sizeof name - 1 && memcmp(value + start, name, sizeof name - 1) == 0) {
            size_t vl = n - (sizeof name - 1);
            while (vl && value[start + sizeof name - 1 + vl - 1] == ' ')
                vl--;
            memset(got, 0, sizeof got);
            if (vl == 64) memcpy(got, value + start + sizeof name - 1, 64);
            ok |= (CRYPTO_memcmp(got, expect, 64) == 0) & (vl == 64);
            compared = 1;
        }
    }
    if (!compared) {
        memset(got, 0, sizeof got);
        (void)CRYPTO_memcmp(got, expect, 64); /* the same work when there is no pair */
    }
    OPENSSL_cleanse(got, sizeof got);
    OPENSSL_cleanse(expect, sizeof expect);
    return ok && want != NULL;
}

int tg_admin_check_token_param(const char *query, const unsigned char *want)
{
    char tok[512];
    tok[0] = '\0';
    int found = 0;
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 6 && memcmp(p, "token=", 6) == 0)
            found = tg_pct_decode(p + 6, n - 6, tok, sizeof tok) == 0 && tok[0];
        p = end ? end + 1 : NULL;
    }
    if (!found) tok[0] = '\0';
    static const unsigned char none[32];
    unsigned char got[32];
    unsigned int gl = sizeof got;
    if (EVP_Digest(tok, strlen(tok), got, &gl, EVP_sha256(), NULL) != 1) found = 0;
    int same = CRYPTO_memcmp(got, want ? want : none, sizeof got) == 0;
    OPENSSL_cleanse(got, sizeof got);
    OPENSSL_cleanse(tok, sizeof tok);
    return same && found && want != NULL;
}
