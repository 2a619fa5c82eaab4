/*
 tokenizer.h: GPT-2 tokenizer, host only, header-only.

 Two independent parts:

 1. Decoder (what the trainers need to print samples). Reads llm.c's gpt2_tokenizer.bin:
      header 256 x uint32: [0]=20240328 magic, [1]=version (1 or 2), [2]=vocab size, [3]=EOT id (v2 only; v1 => 50256)
      body: per token id in order, one uint8 byte count (> 0) followed by that many raw bytes.
    tokenizer_init() returns 0 when the file does not exist (the caller prints one warning and goes on without
    sampling, as llm.c does); a file that exists but is not a valid tokenizer is an error (fail()).

 2. Encoder: GPT-2 byte-level BPE built from OpenAI's encoder.json + vocab.bpe, giving exactly the ids of
    tiktoken's gpt2 `encode_ordinary` ("<|endoftext|>" in the text is ordinary text, never the special id).
    - pre-tokenization: GPT-2's pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      matched by hand over codepoints, with the class tables of llmc/unicode_tables.h (Unicode 16.0, as tiktoken).
    - each pre-token: if its bytes are a whole token, that token; else tiktoken's merge rule: repeatedly merge the
      adjacent pair whose concatenated bytes have the lowest rank (= token id), leftmost on ties.
    - results are cached per pre-token.
    Also writes gpt2_tokenizer.bin (v2) from the loaded vocabulary.

 Errors in the vocabulary files are fatal (fail()). Text to encode must be valid UTF-8: bpe_encode() reports the
 offset of the first bad byte so the caller can name the file.
*/
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <string>
#include <vector>
#include <unordered_map>
#include <queue>
#include <algorithm>

#include "utils.h"
#include "unicode_tables.h"

#define GPT2_TOKENIZER_MAGIC 20240328
#define GPT2_EOT 50256
#define GPT2_VOCAB_SIZE 50257

// ----------------------------------------------------------------------------------------------------------------
// Part 1: decoder for gpt2_tokenizer.bin

typedef struct {
    uint32_t vocab_size;
    uint32_t eot_token;
    int init_ok;                     // 1 after a successful tokenizer_init
    std::vector<std::string> tokens; // raw bytes of each token (std::string keeps embedded zero bytes)
} Tokenizer;

// returns 1 on success, 0 if `path` does not exist; fail()s on a file that exists but is not a valid tokenizer
static inline int tokenizer_init(Tokenizer* t, const char* path) {
    t->vocab_size = 0;
    t->eot_token = 0;
    t->init_ok = 0;
    t->tokens.clear();
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT) return 0;
        fail("cannot open tokenizer %s (%s)", path, strerror(errno));
    }
    uint32_t header[256];
    if (fread(header, sizeof(uint32_t), 256, f) != 256) {
        fail("tokenizer %s is truncated (shorter than its 1024-byte header)", path);
    }
    if (header[0] != GPT2_TOKENIZER_MAGIC) {
        fail("%s is not a gpt2_tokenizer.bin (magic %u, expected %u)", path, header[0], GPT2_TOKENIZER_MAGIC);
    }
    uint32_t version = header[1];
    if (version != 1 && version != 2) fail("tokenizer %s has unsupported version %u (expected 1 or 2)", path, version);
    t->vocab_size = header[2];
    t->eot_token = version == 1 ? GPT2_EOT : header[3];
    if (t->vocab_size == 0 || t->vocab_size > (1u << 24)) fail("tokenizer %s has bad vocab size %u", path, t->vocab_size);
    if (t->eot_token >= t->vocab_size) fail("tokenizer %s: EOT id %u is outside the vocab (%u)", path, t->eot_token, t->vocab_size);
    t->tokens.resize(t->vocab_size);
    char buf[256];
    for (uint32_t i = 0; i < t->vocab_size; i++) {
        unsigned char len;
        if (fread(&len, 1, 1, f) != 1) fail("tokenizer %s is truncated (ends at token %u of %u)", path, i, t->vocab_size);
        if (len == 0) fail("tokenizer %s is corrupt (token %u has length 0)", path, i);
        if (fread(buf, 1, len, f) != len) fail("tokenizer %s is truncated (inside token %u of %u)", path, i, t->vocab_size);
        t->tokens[i].assign(buf, len);
    }
    if (fgetc(f) != EOF) fail("tokenizer %s is corrupt (extra bytes after %u tokens)", path, t->vocab_size);
    fclose(f);
    t->init_ok = 1;
    return 1;
}

// NUL-terminated bytes of token `id`, or NULL for an id outside the vocab (or before a successful init).
// A token that contains a zero byte (id 0 is "\0" in GPT-2) prints short: use tokenizer_token_len for raw output.
static inline const char* tokenizer_decode(const Tokenizer* t, uint32_t id) {
    if (!t->init_ok || id >= t->vocab_size) return NULL;
    return t->tokens[id].c_str();
}

static inline size_t tokenizer_token_len(const Tokenizer* t, uint32_t id) {
    if (!t->init_ok || id >= t->vocab_size) return 0;
    return t->tokens[id].size();
}

static inline void tokenizer_free(Tokenizer* t) {
    t->tokens.clear();
    t->tokens.shrink_to_fit();
    t->init_ok = 0;
}

// ----------------------------------------------------------------------------------------------------------------
// UTF-8 helpers

// append codepoint cp as UTF-8
static inline void utf8_append(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
        out->push_back((char)cp);
    } else if (cp < 0x800) {
        out->push_back((char)(0xC0 | (cp >> 6)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out->push_back((char)(0xE0 | (cp >> 12)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    } else {
        out->push_back((char)(0xF0 | (cp >> 18)));
        out->push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
        out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back((char)(0x80 | (cp & 0x3F)));
    }
}

// decode one codepoint of strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) at s[i], i < n.
// returns its byte length (1..4) and sets *cp, or 0 if the bytes there are not valid UTF-8.
static inline int utf8_decode(const unsigned char* s, size_t i, size_t n, uint32_t* cp) {
    unsigned char c = s[i];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (i + len > n) return 0;
    for (int k = 1; k < len; k++) {
        unsigned char d = s[i + k];
        if ((d & 0xC0) != 0x80) return 0;
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

// ----------------------------------------------------------------------------------------------------------------
// Unicode character classes for the pre-tokenizer

enum { UCLASS_OTHER = 0, UCLASS_LETTER = 1, UCLASS_NUMBER = 2, UCLASS_SPACE = 3 };

static inline int unicode_in_ranges(const uint32_t (*r)[2], int count, uint32_t cp) {
    int lo = 0, hi = count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static inline int unicode_class_slow(uint32_t cp) {
    if (unicode_in_ranges(unicode_letter_ranges, unicode_letter_ranges_count, cp)) return UCLASS_LETTER;
    if (unicode_in_ranges(unicode_number_ranges, unicode_number_ranges_count, cp)) return UCLASS_NUMBER;
    if (unicode_in_ranges(unicode_space_ranges, unicode_space_ranges_count, cp)) return UCLASS_SPACE;
    return UCLASS_OTHER;
}

// class of a codepoint; the Basic Multilingual Plane goes through a 64 KiB table built on first use
static inline int unicode_class(uint32_t cp) {
    static const std::vector<unsigned char> bmp = [] { // C++11: initialized once, thread-safe
        std::vector<unsigned char> t(0x10000);
        for (uint32_t c = 0; c < 0x10000; c++) t[c] = (unsigned char)unicode_class_slow(c);
        return t;
    }();
    return cp < 0x10000 ? bmp[cp] : unicode_class_slow(cp);
}

// ----------------------------------------------------------------------------------------------------------------
// GPT-2's reversible byte <-> unicode mapping (encoder.json/vocab.bpe spell token bytes with these characters):
// the printable bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing
// order, are written as U+0100, U+0101, ...

static inline void gpt2_byte_to_unicode(uint32_t table[256]) {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        table[b] = printable ? b : next++;
    }
}

// ----------------------------------------------------------------------------------------------------------------
// A small JSON reader: just enough for encoder.json (one object of string -> integer) and jsonl documents.
// Every function returns false and sets *err on malformed input.

typedef struct {
    const char* p;   // current position
    const char* end; // one past the last byte
    const char* err; // message of the first error (static string)
} JsonCursor;

static inline void json_skip_ws(JsonCursor* c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static inline bool json_error(JsonCursor* c, const char* msg) {
    if (c->err == NULL) c->err = msg;
    return false;
}

static inline bool json_hex4(JsonCursor* c, uint32_t* v) {
    if (c->end - c->p < 4) return json_error(c, "truncated \\u escape");
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        char h = c->p[k];
        x <<= 4;
        if (h >= '0' && h <= '9') x |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f') x |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') x |= (uint32_t)(h - 'A' + 10);
        else return json_error(c, "bad hex digit in \\u escape");
    }
    c->p += 4;
    *v = x;
    return true;
}

// parse a JSON string at c->p (which must be at the opening quote) into UTF-8 bytes in *out (if out != NULL).
// \uXXXX escapes are decoded, surrogate pairs combined; a lone surrogate becomes U+FFFD (what tiktoken does with
// the lone surrogates that Python's json module lets through). Raw bytes must be valid UTF-8, no control chars.
static inline bool json_parse_string(JsonCursor* c, std::string* out) {
    if (c->p >= c->end || *c->p != '"') return json_error(c, "expected a string");
    c->p++;
    if (out) out->clear();
    for (;;) {
        if (c->p >= c->end) return json_error(c, "unterminated string");
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') { c->p++; return true; }
        if (ch < 0x20) return json_error(c, "raw control character inside a string");
        if (ch != '\\') {
            // copy a run of plain bytes, validating UTF-8
            const char* start = c->p;
            while (c->p < c->end) {
                unsigned char d = (unsigned char)*c->p;
                if (d == '"' || d == '\\' || d < 0x20) break;
                if (d < 0x80) { c->p++; continue; }
                uint32_t cp;
                int len = utf8_decode((const unsigned char*)c->p, 0, (size_t)(c->end - c->p), &cp);
                if (len == 0) return json_error(c, "invalid UTF-8 inside a string");
                c->p += len;
            }
            if (out) out->append(start, (size_t)(c->p - start));
            continue;
        }
        // escape
        c->p++;
        if (c->p >= c->end) return json_error(c, "unterminated escape");
        char e = *c->p++;
        uint32_t cp;
        switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (!json_hex4(c, &cp)) return false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // high surrogate: combine with a following \uDC00..\uDFFF, else it is a lone surrogate
                    if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                        JsonCursor look = *c;
                        look.p += 2;
                        uint32_t lo;
                        if (json_hex4(&look, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                            c->p = look.p;
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            break;
                        }
                    }
                    cp = 0xFFFD;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                break;
            }
            default: return json_error(c, "unknown escape in a string");
        }
        if (out) utf8_append(out, cp);
    }
}

// parse a non-negative integer (as encoder.json values are)
static inline bool json_parse_uint(JsonCursor* c, uint64_t* v) {
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return json_error(c, "expected a non-negative integer");
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        x = x * 10 + (uint64_t)(*c->p - '0');
        if (x > (1ull << 40)) return json_error(c, "integer too large");
        c->p++;
    }
    *v = x;
    return true;
}

static inline bool json_match_literal(JsonCursor* c, const char* lit) {
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return json_error(c, "unexpected character");
    c->p += n;
    return true;
}

// skip any JSON value (used for fields we do not need)
static inline bool json_skip_value(JsonCursor* c, int depth) {
    if (depth > 200) return json_error(c, "nesting too deep");
    json_skip_ws(c);
    if (c->p >= c->end) return json_error(c, "unexpected end of input");
    char ch = *c->p;
    if (ch == '"') return json_parse_string(c, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        json_skip_ws(c);
        if (c->p < c->end && *c->p == close) { c->p++; return true; }
        for (;;) {
            if (ch == '{') {
                json_skip_ws(c);
                if (!json_parse_string(c, NULL)) return false;
                json_skip_ws(c);
                if (c->p >= c->end || *c->p != ':') return json_error(c, "expected ':'");
                c->p++;
            }
            if (!json_skip_value(c, depth + 1)) return false;
            json_skip_ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; continue; }
            if (c->p < c->end && *c->p == close) { c->p++; return true; }
            return json_error(c, ch == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (ch == 't') return json_match_literal(c, "true");
    if (ch == 'f') return json_match_literal(c, "false");
    if (ch == 'n') return json_match_literal(c, "null");
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        // number: -?digits(.digits)?([eE][+-]?digits)?
        if (*c->p == '-') c->p++;
        const char* d0 = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
        if (c->p == d0) return json_error(c, "bad number");
        if (c->p < c->end && *c->p == '.') {
            c->p++;
            const char* d1 = c->p;
            while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
            if (c->p == d1) return json_error(c, "bad number");
        }
        if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
            c->p++;
            if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
            const char* d2 = c->p;
            while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
            if (c->p == d2) return json_error(c, "bad number");
        }
        return true;
    }
    return json_error(c, "unexpected character");
}

// parse one JSON object (a whole jsonl line) and return the string value of field `field` in *out.
// *found is set to false if the object has no such field; a field with a non-string value is an error.
// If the field appears more than once the last value wins (as with Python's json module).
static inline bool json_object_get_string(JsonCursor* c, const char* field, std::string* out, bool* found) {
    *found = false;
    std::string key;
    json_skip_ws(c);
    if (c->p >= c->end || *c->p != '{') return json_error(c, "expected a JSON object");
    c->p++;
    json_skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
    } else {
        for (;;) {
            json_skip_ws(c);
            if (!json_parse_string(c, &key)) return false;
            json_skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return json_error(c, "expected ':'");
            c->p++;
            json_skip_ws(c);
            if (key == field) {
                if (c->p >= c->end || *c->p != '"') return json_error(c, "the requested field is not a string");
                if (!json_parse_string(c, out)) return false;
                *found = true;
            } else {
                if (!json_skip_value(c, 1)) return false;
            }
            json_skip_ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; continue; }
            if (c->p < c->end && *c->p == '}') { c->p++; break; }
            return json_error(c, "expected ',' or '}'");
        }
    }
    json_skip_ws(c);
    if (c->p != c->end) return json_error(c, "extra characters after the JSON object");
    return true;
}

// ----------------------------------------------------------------------------------------------------------------
// Part 2: the BPE encoder

typedef struct {
    std::unordered_map<std::string, uint32_t> ranks; // token bytes -> id (= merge rank, as in tiktoken)
    std::vector<std::string> id_to_bytes;            // id -> token bytes (50257 entries, incl. "<|endoftext|>")
    uint32_t eot_token;
    std::unordered_map<std::string, std::vector<uint32_t>> cache; // pre-token bytes -> ids
    // scratch buffers reused across calls
    std::vector<uint32_t> cps;
    std::vector<size_t> offs;
    std::vector<unsigned char> cls;
} BPEEncoder;

static inline std::string bpe_read_file(const char* path) {
    FILE* f = fopen_or_fail(path, "rb");
    std::string s;
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, got);
    if (ferror(f)) fail("cannot read %s", path);
    fclose(f);
    return s;
}

// map a token spelled in GPT-2's byte-unicode alphabet back to raw bytes; false if a character is outside it
static inline bool gpt2_unicode_to_bytes(const std::string& spelled, const int unicode_to_byte[324], std::string* out) {
    out->clear();
    const unsigned char* s = (const unsigned char*)spelled.data();
    size_t n = spelled.size();
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_decode(s, i, n, &cp);
        if (len == 0 || cp >= 324 || unicode_to_byte[cp] < 0) return false;
        out->push_back((char)unicode_to_byte[cp]);
        i += (size_t)len;
    }
    return true;
}

// load encoder.json and vocab.bpe; checks that they describe the standard GPT-2 BPE (byte tokens first, then one
// token per merge in vocab.bpe order, then <|endoftext|>)
static inline void bpe_encoder_init(BPEEncoder* e, const char* encoder_json_path, const char* vocab_bpe_path) {
    uint32_t b2u[256];
    gpt2_byte_to_unicode(b2u);
    int u2b[324];
    for (int k = 0; k < 324; k++) u2b[k] = -1;
    for (int b = 0; b < 256; b++) u2b[b2u[b]] = b;

    // encoder.json: { "token": id, ... }
    std::string js = bpe_read_file(encoder_json_path);
    JsonCursor c = { js.data(), js.data() + js.size(), NULL };
    std::vector<std::string> spelled_of_id;
    std::vector<char> seen;
    std::string key, bytes;
    json_skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') fail("%s is not an encoder.json (expected a JSON object)", encoder_json_path);
    c.p++;
    size_t count = 0;
    for (;;) {
        json_skip_ws(&c);
        if (c.p < c.end && *c.p == '}' && count == 0) { c.p++; break; }
        uint64_t id;
        if (!json_parse_string(&c, &key)) goto bad_json;
        json_skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') { json_error(&c, "expected ':'"); goto bad_json; }
        c.p++;
        json_skip_ws(&c);
        if (!json_parse_uint(&c, &id)) goto bad_json;
        if (id >= (1u << 20)) fail("%s: token id %llu is too large", encoder_json_path, (unsigned long long)id);
        if (id >= spelled_of_id.size()) { spelled_of_id.resize(id + 1); seen.resize(id + 1, 0); }
        if (seen[id]) fail("%s: token id %llu appears twice", encoder_json_path, (unsigned long long)id);
        seen[id] = 1;
        spelled_of_id[id] = key;
        count++;
        json_skip_ws(&c);
        if (c.p < c.end && *c.p == ',') { c.p++; continue; }
        if (c.p < c.end && *c.p == '}') { c.p++; break; }
        json_error(&c, "expected ',' or '}'");
        goto bad_json;
    }
    json_skip_ws(&c);
    if (c.p != c.end) { json_error(&c, "extra characters after the JSON object"); goto bad_json; }
    if (count != spelled_of_id.size()) fail("%s: token ids are not contiguous from 0", encoder_json_path);
    if (count < 257) fail("%s has only %zu tokens", encoder_json_path, count);

    e->id_to_bytes.assign(count, std::string());
    e->ranks.clear();
    e->ranks.reserve(count * 2);
    e->eot_token = (uint32_t)count; // set below
    for (size_t id = 0; id < count; id++) {
        const std::string& sp = spelled_of_id[id];
        if (sp == "<|endoftext|>") {
            if (id != count - 1) fail("%s: <|endoftext|> must be the last token", encoder_json_path);
            e->eot_token = (uint32_t)id;
            e->id_to_bytes[id] = sp; // its bytes, as tiktoken's decode_bytes gives them
            continue;
        }
        if (!gpt2_unicode_to_bytes(sp, u2b, &bytes) || bytes.empty()) {
            fail("%s: token %zu is not spelled in GPT-2's byte alphabet", encoder_json_path, id);
        }
        if (bytes.size() > 255) fail("%s: token %zu is longer than 255 bytes", encoder_json_path, id);
        if (!e->ranks.emplace(bytes, (uint32_t)id).second) fail("%s: two tokens have the same bytes (id %zu)", encoder_json_path, id);
        e->id_to_bytes[id] = bytes;
    }
    if (e->eot_token == count) fail("%s has no <|endoftext|> token", encoder_json_path);
    for (int b = 0; b < 256; b++) {
        std::string one(1, (char)b);
        auto it = e->ranks.find(one);
        if (it == e->ranks.end()) fail("%s: byte 0x%02x has no token", encoder_json_path, b);
    }

    {
        // vocab.bpe: "#version" line, then merge k (0-based) "A B" must produce token 256 + k
        std::string vb = bpe_read_file(vocab_bpe_path);
        size_t pos = 0, lineno = 0, merges = 0;
        std::string a, b;
        while (pos < vb.size()) {
            size_t nl = vb.find('\n', pos);
            if (nl == std::string::npos) nl = vb.size();
            std::string line = vb.substr(pos, nl - pos);
            pos = nl + 1;
            lineno++;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
            if (line.empty()) continue;
            size_t sp = line.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos) {
                fail("%s:%zu: expected a merge \"A B\"", vocab_bpe_path, lineno);
            }
            if (!gpt2_unicode_to_bytes(line.substr(0, sp), u2b, &a) || !gpt2_unicode_to_bytes(line.substr(sp + 1), u2b, &b)) {
                fail("%s:%zu: merge is not spelled in GPT-2's byte alphabet", vocab_bpe_path, lineno);
            }
            if (!e->ranks.count(a) || !e->ranks.count(b)) fail("%s:%zu: merge of unknown tokens", vocab_bpe_path, lineno);
            auto it = e->ranks.find(a + b);
            if (it == e->ranks.end() || it->second != 256 + merges) {
                fail("%s:%zu: merge %zu does not match %s (expected token id %zu)", vocab_bpe_path, lineno, merges,
                     encoder_json_path, 256 + merges);
            }
            merges++;
        }
        if (256 + merges != e->eot_token) {
            fail("%s has %zu merges but %s has %u ordinary tokens (expected 256 + merges)", vocab_bpe_path, merges,
                 encoder_json_path, e->eot_token);
        }
    }
    e->cache.clear();
    return;
bad_json:
    fail("%s: bad JSON at byte %zu (%s)", encoder_json_path, (size_t)(c.p - js.data()), c.err ? c.err : "?");
}

// rank (= token id) of bytes s[0..n), or UINT32_MAX if they are not a token
static inline uint32_t bpe_rank(const BPEEncoder* e, const char* s, size_t n, std::string* scratch) {
    scratch->assign(s, n);
    auto it = e->ranks.find(*scratch);
    return it == e->ranks.end() ? UINT32_MAX : it->second;
}

// byte-pair merge of one pre-token (tiktoken's rule). Appends ids to *out.
static inline void bpe_merge_piece(const BPEEncoder* e, const char* s, size_t n, std::vector<uint32_t>* out) {
    std::string scratch;
    uint32_t whole = bpe_rank(e, s, n, &scratch);
    if (whole != UINT32_MAX) { out->push_back(whole); return; }
    if (n < 128) {
        // short piece: a linear scan per merge, like tiktoken. starts[k] = start of part k; starts.back() = n.
        // pair_rank[k] = rank of part k joined with part k+1.
        std::vector<size_t> starts(n + 1);
        for (size_t k = 0; k <= n; k++) starts[k] = k;
        std::vector<uint32_t> pair_rank(n > 0 ? n - 1 : 0);
        for (size_t k = 0; k + 1 < n; k++) pair_rank[k] = bpe_rank(e, s + k, 2, &scratch);
        while (pair_rank.size() > 0) {
            size_t best = 0;
            for (size_t k = 1; k < pair_rank.size(); k++) if (pair_rank[k] < pair_rank[best]) best = k;
            if (pair_rank[best] == UINT32_MAX) break;
            // merge part best with part best+1
            starts.erase(starts.begin() + (long)best + 1);
            pair_rank.erase(pair_rank.begin() + (long)best);
            size_t nparts = starts.size() - 1;
            if (best + 1 < nparts) pair_rank[best] = bpe_rank(e, s + starts[best], starts[best + 2] - starts[best], &scratch);
            if (best > 0) pair_rank[best - 1] = bpe_rank(e, s + starts[best - 1], starts[best + 1] - starts[best - 1], &scratch);
        }
        for (size_t k = 0; k + 1 < starts.size(); k++) {
            out->push_back(bpe_rank(e, s + starts[k], starts[k + 1] - starts[k], &scratch));
        }
        return;
    }
    // long piece: doubly linked list of parts + min-heap of candidate pairs keyed (rank, left start), with
    // per-part version numbers to drop stale heap entries. Picks the same merge as the scan above, in O(n log n).
    struct Part { size_t start, end; long prev, next; uint32_t version; bool alive; };
    struct Cand { uint32_t rank; size_t start; long left, right; uint32_t vl, vr; };
    struct CandGreater {
        bool operator()(const Cand& x, const Cand& y) const {
            return x.rank != y.rank ? x.rank > y.rank : x.start > y.start;
        }
    };
    std::vector<Part> parts(n);
    for (size_t k = 0; k < n; k++) parts[k] = Part{ k, k + 1, (long)k - 1, k + 1 < n ? (long)k + 1 : -1, 0, true };
    std::priority_queue<Cand, std::vector<Cand>, CandGreater> heap;
    auto push_pair = [&](long l) {
        if (l < 0) return;
        long r = parts[l].next;
        if (r < 0) return;
        uint32_t rk = bpe_rank(e, s + parts[l].start, parts[r].end - parts[l].start, &scratch);
        if (rk != UINT32_MAX) heap.push(Cand{ rk, parts[l].start, l, r, parts[l].version, parts[r].version });
    };
    for (size_t k = 0; k + 1 < n; k++) push_pair((long)k);
    while (!heap.empty()) {
        Cand top = heap.top();
        heap.pop();
        Part& L = parts[top.left];
        Part& R = parts[top.right];
        if (!L.alive || !R.alive || L.version != top.vl || R.version != top.vr || L.next != top.right) continue;
        L.end = R.end;
        L.next = R.next;
        L.version++;
        R.alive = false;
        if (R.next >= 0) parts[R.next].prev = top.left;
        push_pair(L.prev);
        push_pair(top.left);
    }
    for (long k = 0; k >= 0; k = parts[k].next) {
        out->push_back(bpe_rank(e, s + parts[k].start, parts[k].end - parts[k].start, &scratch));
    }
}

static inline void bpe_encode_piece_cached(BPEEncoder* e, const char* s, size_t n, std::vector<uint32_t>* out) {
    if (n > 64) { bpe_merge_piece(e, s, n, out); return; }
    std::string key(s, n);
    auto it = e->cache.find(key);
    if (it != e->cache.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        return;
    }
    if (e->cache.size() >= (1u << 21)) e->cache.clear(); // bound memory on huge corpora
    std::vector<uint32_t> ids;
    bpe_merge_piece(e, s, n, &ids);
    out->insert(out->end(), ids.begin(), ids.end());
    e->cache.emplace(std::move(key), std::move(ids));
}

// Encode UTF-8 text (like tiktoken's encode_ordinary), appending ids to *out. Returns true on success; on invalid
// UTF-8 returns false with *bad_offset = offset of the first bad byte (nothing is appended then).
static inline bool bpe_encode(BPEEncoder* e, const char* text, size_t len, std::vector<uint32_t>* out, size_t* bad_offset) {
    const unsigned char* s = (const unsigned char*)text;
    std::vector<uint32_t>& cps = e->cps;
    std::vector<size_t>& offs = e->offs;
    std::vector<unsigned char>& cls = e->cls;
    cps.clear(); offs.clear(); cls.clear();
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = utf8_decode(s, i, len, &cp);
        if (l == 0) { if (bad_offset) *bad_offset = i; return false; }
        cps.push_back(cp);
        offs.push_back(i);
        cls.push_back((unsigned char)unicode_class(cp));
        i += (size_t)l;
    }
    size_t n = cps.size();
    offs.push_back(len);
    size_t i = 0;
    while (i < n) {
        size_t j; // the pre-token is codepoints [i, j)
        uint32_t c = cps[i];
        if (c == '\'' && i + 1 < n && (cps[i + 1] == 's' || cps[i + 1] == 't' || cps[i + 1] == 'm' || cps[i + 1] == 'd')) {
            j = i + 2; // 's 't 'm 'd
        } else if (c == '\'' && i + 2 < n && ((cps[i + 1] == 'r' && cps[i + 2] == 'e') || (cps[i + 1] == 'v' && cps[i + 2] == 'e') ||
                                              (cps[i + 1] == 'l' && cps[i + 2] == 'l'))) {
            j = i + 3; // 're 've 'll
        } else {
            // " ?X+" alternatives: an optional single U+0020, then a run of one class (letters / numbers / other)
            size_t body = i;
            if (c == ' ' && i + 1 < n && cls[i + 1] != UCLASS_SPACE) body = i + 1;
            int bk = cls[body];
            if (bk != UCLASS_SPACE) {
                j = body + 1;
                while (j < n && cls[j] == bk) j++;
            } else {
                // whitespace: \s+(?!\S) takes the run but leaves its last char when a non-space follows;
                // a single whitespace char before a non-space falls to the final \s+
                j = i + 1;
                while (j < n && cls[j] == UCLASS_SPACE) j++;
                if (j < n && j - i >= 2) j--;
            }
        }
        bpe_encode_piece_cached(e, text + offs[i], offs[j] - offs[i], out);
        i = j;
    }
    return true;
}

static inline void bpe_encoder_free(BPEEncoder* e) {
    e->ranks.clear();
    e->id_to_bytes.clear();
    e->cache.clear();
}

// write llm.c's gpt2_tokenizer.bin (version 2) for this vocabulary, atomically (temp file + rename)
static inline void bpe_write_tokenizer_bin(const BPEEncoder* e, const char* path) {
    std::string tmp = std::string(path) + ".tmp";
    FILE* f = fopen_or_fail(tmp.c_str(), "wb");
    uint32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = GPT2_TOKENIZER_MAGIC;
    header[1] = 2;
    header[2] = (uint32_t)e->id_to_bytes.size();
    header[3] = e->eot_token;
    fwrite_or_fail(header, sizeof(uint32_t), 256, f, tmp.c_str());
    for (size_t id = 0; id < e->id_to_bytes.size(); id++) {
        const std::string& b = e->id_to_bytes[id];
        unsigned char len = (unsigned char)b.size();
        fwrite_or_fail(&len, 1, 1, f, tmp.c_str());
        fwrite_or_fail(b.data(), 1, b.size(), f, tmp.c_str());
    }
    atomic_commit(f, tmp.c_str(), path);
}
