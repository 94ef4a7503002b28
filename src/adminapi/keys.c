/* The admin API's keys: GET and POST /admin/v1/tenants/{id}/keys (as `key list --tenant`
 * and `key create --tenant ID [--name] [--expires] [--signing]`), DELETE /keys/{id} (`key
 * revoke`) and POST /keys/{id}/rotate (`key rotate KEY_ID [--grace]`), through the same
 * steps as the CLI (auth/keyops.h) and its words.
 *
 * A secret is in the answer that made it only, never in the audit record (key_json holds
 * none). A signing secret is sealed by the config's KEK, which the call carries (req->kek);
 * without one, "signing" is refused as the CLI refuses --signing.
 *
 * `key import` has no route: its secret would travel in a request body through the admin
 * listener (plain HTTP unless a proxy in front terminates TLS, and whatever logs bodies on
 * the way), for a one-time migration step that the CLI does on the gateway's host, with the
 * secret on stdin. */
#include <stdio.h>
#include <string.h>

#include "adminapi/call.h"
#include "auth/keyops.h"
#include "util/clock.h"

#define ERR tg_adminapi__error

/* What key list shows: never a secret or a hash. */
static json_t *key_json(const tg_key_t *k)
{
    json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:s,s:I,s:b}", "id", k->id, "tenant",
                          tg_adminapi__text(k->tenant_id), "prefix", tg_adminapi__text(k->prefix),
                          "name", tg_adminapi__text(k->name), "status", k->status, "created_us",
                          (json_int_t)k->created_us, "signing", k->signing);
    json_object_set_new(o, "last_used_us",
                        k->last_used_us ? json_integer(k->last_used_us) : json_null());
    json_object_set_new(o, "expires_us", k->expires_us ? json_integer(k->expires_us) : json_null());
    json_object_set_new(o, "rotated_from",
                        k->rotated_from[0] ? json_string(k->rotated_from) : json_null());
    return o;
}

static int on_key(const tg_key_t *k, void *ud)
{
    return json_array_append_new(ud, key_json(k));
}

json_t *tg_adminapi__keys_list(call_t *c)
{
    json_t *e;
    if (tg_adminapi__need_tenant(c, c->id, &e) != 0) return e;
    json_t *a = json_array();
    tg_err_t err = {{0}};
    if (tg_store_key_list(c->s, c->id, on_key, a, &err) != 0) {
        json_decref(a);
        return tg_adminapi__store_error(c, &err);
    }
    c->status = 200;
    return json_pack("{s:o}", "keys", a);
}

/* The CLI's words for what tg_key_make or tg_key_rotate refused. */
static json_t *keyop_error(call_t *c, tg_keyop_t r, const char *tenant, const tg_err_t *err)
{
    switch (r) {
    case TG_KEYOP_NO_TENANT: return ERR(c, 404, "not_found", "no tenant \"%s\"", tenant);
    case TG_KEYOP_NO_KEY: return ERR(c, 404, "not_found", "no key \"%s\"", c->id);
    case TG_KEYOP_NEED_KEK:
        return ERR(c, 422, "invalid_value",
                   "a signing key needs encryption.kek_file or encryption.kek_env in the "
                   "gateway's config: signing secrets are stored sealed by that key "
                   "(docs/signing.md)");
    case TG_KEYOP_RANDOM:
        return ERR(c, 500, "internal", "cannot make a key: the system random source failed");
    default: return tg_adminapi__store_error(c, err);
    }
}

/* A key just made as the answer shows it: its row and its secrets, this once; and, as the
 * CLI's note, a warning when its tenant is not active. */
static json_t *made_json(const tg_key_made_t *m)
{
    json_t *o = key_json(&m->key);
    json_object_set_new(o, "secret", json_string(m->secret));
    if (m->key.signing) json_object_set_new(o, "signing_secret", json_string(m->signing));
    if (strcmp(m->tenant_status, "active") != 0)
        json_object_set_new(o, "warning",
                            json_sprintf("tenant \"%s\" is %s; the key works once it is enabled",
                                         m->key.tenant_id, m->tenant_status));
    return o;
}

/* As `key create --tenant ID [--name NAME] [--expires DATE] [--signing]`. */
json_t *tg_adminapi__keys_create(call_t *c)
{
    static const char *const allowed[] = {"name", "expires", "signing", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 0);
    if (bad) return bad;
    const char *name = tg_adminapi__member_name(c, sizeof((tg_key_t *)0)->name, &bad);
    if (bad) return bad;
    const char *expires = tg_adminapi__member_text(c, "expires", &bad);
    if (bad) return bad;
    json_t *sg = c->body ? json_object_get(c->body, "signing") : NULL;
    if (sg && !json_is_boolean(sg))
        return ERR(c, 400, "invalid_request", "\"signing\" must be true or false");
    tg_key_spec_t spec = {.tenant = c->id, .name = name, .signing = json_is_true(sg)};
    if (expires &&
        (tg_parse_instant(expires, &spec.expires_us) != 0 || spec.expires_us <= c->now_us))
        return ERR(c, 422, "invalid_value",
                   "expires \"%.40s\": expected a future UTC date (YYYY-MM-DD) or RFC 3339 time "
                   "(2027-01-31T12:00:00Z)",
                   expires);
    json_t *e;
    if (tg_adminapi__need_tenant(c, c->id, &e) != 0) return e;
    tg_key_made_t m;
    tg_err_t err = {{0}};
    tg_keyop_t r =
        tg_key_make(c->s, c->req->has_kek ? &c->req->kek : NULL, &spec, c->now_us, &m, &err);
    json_t *out;
    if (r != TG_KEYOP_OK) {
        out = keyop_error(c, r, c->id, &err);
    } else {
        tg_adminapi__object(c, "key:%s", m.key.id);
        c->after = key_json(&m.key);
        out = made_json(&m);
        c->status = 201;
    }
    tg_key_made_wipe(&m);
    return out;
}

json_t *tg_adminapi__keys_revoke(call_t *c)
{
    tg_adminapi__object(c, "key:%.100s", c->id);
    tg_err_t err = {{0}};
    int r = tg_store_key_revoke(c->s, c->id, &err);
    if (r == TG_STORE_NOTFOUND) return ERR(c, 404, "not_found", "no key \"%s\"", c->id);
    if (r != 0) return tg_adminapi__store_error(c, &err);
    c->after = json_pack("{s:s,s:s}", "id", c->id, "status", "revoked");
    c->status = 200;
    return json_incref(c->after);
}

/* As `key rotate KEY_ID [--grace 24h]`: {"key": the new key with its secrets, "old": the old
 * key as it is now}, and "warning" when a step after the new key's making failed (the new
 * key is made: its secret must reach the caller all the same). */
json_t *tg_adminapi__keys_rotate(call_t *c)
{
    static const char *const allowed[] = {"grace", NULL};
    json_t *bad = tg_adminapi__check_body(c, allowed, 0);
    if (bad) return bad;
    const char *grace = tg_adminapi__member_text(c, "grace", &bad);
    if (bad) return bad;
    tg_adminapi__object(c, "key:%.100s", c->id);
    int64_t grace_s = TG_KEY_GRACE_DEFAULT_S;
    if (grace && tg_key_parse_grace(grace, &grace_s) != 0)
        return ERR(c, 422, "invalid_value",
                   "grace \"%.40s\": expected a duration such as 30m, 24h or 7d (at most 365d), "
                   "or 0",
                   grace);
    tg_key_made_t m;
    tg_key_rotated_t rot;
    tg_err_t err = {{0}};
    if (tg_store_key_get(c->s, c->id, &rot.old, &err) == 0) /* for the audit record */
        c->before = key_json(&rot.old);
    tg_keyop_t r = tg_key_rotate(c->s, c->req->has_kek ? &c->req->kek : NULL, c->id, grace_s,
                                 c->now_us, &m, &rot, &err);
    if (rot.old.id[0]) snprintf(c->tenant, sizeof c->tenant, "%s", rot.old.tenant_id);
    json_t *out = NULL;
    switch (r) {
    case TG_KEYOP_OK:
    case TG_KEYOP_HALF: break;
    case TG_KEYOP_INACTIVE:
        out =
            ERR(c, 409, "conflict", "key %s is %s: nothing to rotate", rot.old.id, rot.old.status);
        break;
    case TG_KEYOP_EXPIRED:
        out = ERR(c, 409, "conflict", "key %s has expired: nothing to rotate", rot.old.id);
        break;
    case TG_KEYOP_ROTATED:
        out = ERR(c, 409, "conflict",
                  "key %s was rotated already: its successor %s is active (its secret was shown "
                  "once); revoke %s to rotate again",
                  rot.old.id, rot.successor, rot.successor);
        break;
    default: out = keyop_error(c, r, rot.old.tenant_id, &err);
    }
    if (out) {
        tg_key_made_wipe(&m);
        return out;
    }
    c->after = json_pack("{s:o,s:o}", "key", key_json(&m.key), "old", key_json(&rot.old));
    out = json_pack("{s:o,s:o}", "key", made_json(&m), "old", key_json(&rot.old));
    if (r == TG_KEYOP_HALF)
        json_object_set_new(
            out, "warning",
            json_sprintf("%s was made, but %s could not be set to expire (%s): both work; revoke "
                         "%s when its clients have moved",
                         m.key.id, rot.old.id, err.msg, rot.old.id));
    else if (!rot.limits_copied)
        json_object_set_new(out, "warning",
                            json_sprintf("the limits of %s were not all copied to %s: %s",
                                         rot.old.id, m.key.id, rot.err_limits.msg));
    c->status = 201;
    tg_key_made_wipe(&m);
    return out;
}
