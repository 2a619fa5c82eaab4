/*
 tokenize: GPT-2 tokenizer tool (build: g++ -O2 -std=c++17 -I. dev/data/tokenize.cpp -o build/tokenize)

   build/tokenize --write-tokenizer OUT.bin         write llm.c's gpt2_tokenizer.bin (v2, 50257 tokens, EOT 50256)
   build/tokenize --encode [FILE|-]                  print the token ids of the text, one per line (no EOT added;
                                                     = tiktoken gpt2 encode_ordinary)
   build/tokenize --decode [FILE|-]                  read whitespace-separated ids, write their raw bytes to stdout
   build/tokenize --shards INPUT|- --out PREFIX      write llm.c data shards (see below)

 common options:
   --gpt2-dir DIR      folder with encoder.json and vocab.bpe (default $SHARED_DATA/gpt2, else ../shared/data/gpt2)
   --tokenizer PATH    gpt2_tokenizer.bin for --decode (default data/gpt2_tokenizer.bin)

 --shards options:
   --format txt|jsonl  default: jsonl if INPUT ends in .jsonl, else txt (give it explicitly for stdin)
   --docs whole|paragraphs
                       txt only. whole (default): the file is one document.
                       paragraphs: llm.c's tinyshakespeare.py rule: split the text on every "\n\n"; each piece is a
                       document and keeps its "\n\n" (re-added after every piece except the last).
   --field NAME        jsonl only: the string field holding each line's document (default "text")
   --shard-size N      tokens per shard (default 1e8, as FineWeb; the last shard holds the rest)
   --split auto|val|train
                       auto (default): shard 0 is PREFIX_val_000000.bin, shard k >= 1 is PREFIX_train_%06d.bin
                       val: every shard is PREFIX_val_%06d.bin from 0;  train: every shard is PREFIX_train_%06d.bin
                       from 1 (for a corpus whose val split is a separate file)
   --val-tokens K      instead: the first K tokens go to PREFIX_val.bin and all the rest to PREFIX_train.bin
                       (llm.c's Tiny Shakespeare layout, K = 32768)

 Every document is prefixed with EOT (50256). Shard file: 256 x int32 header (20240520, 1, ntok, 0...), then ntok
 uint16 tokens. All shards are written as *.tmp and renamed only after the whole input was read without error, so
 a failed run leaves no shard behind (and no *.tmp). Errors: one line "error: ..." on stderr, exit code 1.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <string>
#include <vector>

#include "llmc/utils.h"
#include "llmc/tokenizer.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1

// ------------------------------------------------------------------------------------------------------------
// temp files to delete if we exit early (fail() calls exit(1), which runs this)

static std::vector<std::string> g_tmp_files;

static void remove_tmp_files(void) {
    for (const std::string& p : g_tmp_files) remove(p.c_str());
    g_tmp_files.clear();
}

// ------------------------------------------------------------------------------------------------------------
// shard writer

enum { SPLIT_AUTO, SPLIT_VAL, SPLIT_TRAIN, SPLIT_VAL_TOKENS };

typedef struct {
    std::string prefix;
    int split;
    long shard_size;  // tokens per shard (SPLIT_VAL_TOKENS: the val size)
    int index;        // index of the shard being written (0-based count of shards started)
    FILE* f;          // open *.tmp of the current shard, or NULL
    long count;       // tokens in the current shard
    std::vector<uint16_t> buf;
    std::vector<std::string> tmp_paths, final_paths;
    std::vector<long> counts;
    long long total;
} ShardWriter;

static std::string shard_name(const ShardWriter* w, int index) {
    char num[32];
    switch (w->split) {
        case SPLIT_AUTO:
            snprintf(num, sizeof(num), "%06d", index);
            return w->prefix + (index == 0 ? "_val_" : "_train_") + num + ".bin";
        case SPLIT_VAL:
            snprintf(num, sizeof(num), "%06d", index);
            return w->prefix + "_val_" + num + ".bin";
        case SPLIT_TRAIN:
            snprintf(num, sizeof(num), "%06d", index + 1);
            return w->prefix + "_train_" + num + ".bin";
        default:
            return w->prefix + (index == 0 ? "_val.bin" : "_train.bin");
    }
}

static long shard_limit(const ShardWriter* w) {
    if (w->split == SPLIT_VAL_TOKENS && w->index >= 1) return 0x7FFFFFFFL; // everything after val: one train file
    return w->shard_size;
}

static void shard_flush_buf(ShardWriter* w) {
    if (!w->buf.empty()) {
        fwrite_or_fail(w->buf.data(), sizeof(uint16_t), w->buf.size(), w->f, w->tmp_paths.back().c_str());
        w->buf.clear();
    }
}

static void shard_write_header(FILE* f, long ntok, const char* path) {
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int32_t)ntok;
    fwrite_or_fail(header, sizeof(int32_t), 256, f, path);
}

static void shard_open(ShardWriter* w) {
    if (w->split == SPLIT_VAL_TOKENS && w->index >= 2) fail("more than 2^31-1 train tokens do not fit one shard");
    std::string final_path = shard_name(w, w->index);
    std::string tmp = final_path + ".tmp";
    g_tmp_files.push_back(tmp);
    w->f = fopen_or_fail(tmp.c_str(), "wb");
    shard_write_header(w->f, 0, tmp.c_str()); // placeholder, rewritten on close
    w->tmp_paths.push_back(tmp);
    w->final_paths.push_back(final_path);
    w->count = 0;
}

static void shard_close(ShardWriter* w) {
    const char* tmp = w->tmp_paths.back().c_str();
    shard_flush_buf(w);
    fseek_or_fail(w->f, 0, SEEK_SET, tmp);
    shard_write_header(w->f, w->count, tmp);
    if (fflush(w->f) != 0 || ferror(w->f) || fclose(w->f) != 0) fail("could not write %s (disk full?)", tmp);
    w->f = NULL;
    w->counts.push_back(w->count);
    printf("done: %s (%ld tokens; renamed when the whole input is read)\n", w->final_paths.back().c_str(), w->count);
    fflush(stdout);
    w->index++;
}

static void shard_push(ShardWriter* w, uint32_t token) {
    if (w->f == NULL) shard_open(w);
    w->buf.push_back((uint16_t)token);
    if (w->buf.size() >= (1u << 20)) shard_flush_buf(w);
    w->count++;
    w->total++;
    if (w->count == shard_limit(w)) shard_close(w);
}

// close the last shard and rename every *.tmp to its final name
static void shard_finish(ShardWriter* w) {
    if (w->f != NULL) shard_close(w);
    for (size_t k = 0; k < w->tmp_paths.size(); k++) {
        if (rename(w->tmp_paths[k].c_str(), w->final_paths[k].c_str()) != 0) {
            fail("could not rename %s to %s (%s)", w->tmp_paths[k].c_str(), w->final_paths[k].c_str(), strerror(errno));
        }
    }
    g_tmp_files.clear();
    for (size_t k = 0; k < w->final_paths.size(); k++) {
        printf("wrote %s (%ld tokens)\n", w->final_paths[k].c_str(), w->counts[k]);
    }
    // a longer earlier run may have left higher-numbered shards that a glob would pick up
    if (w->split != SPLIT_VAL_TOKENS) {
        std::string next = shard_name(w, w->index);
        if (file_exists(next.c_str())) {
            fprintf(stderr, "warning: %s is left from an earlier run (not part of this output); delete it\n", next.c_str());
        }
    }
}

// ------------------------------------------------------------------------------------------------------------
// input

static FILE* open_input(const char* path) {
    if (strcmp(path, "-") == 0) return stdin;
    return fopen_or_fail(path, "rb");
}

static std::string read_all(const char* path) {
    FILE* f = open_input(path);
    std::string s;
    std::vector<char> buf(1 << 20);
    size_t got;
    while ((got = fread(buf.data(), 1, buf.size(), f)) > 0) s.append(buf.data(), got);
    if (ferror(f)) fail("cannot read %s", path);
    if (f != stdin) fclose(f);
    return s;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char* input_name(const char* path) { return strcmp(path, "-") == 0 ? "<stdin>" : path; }

static void encode_or_fail(BPEEncoder* enc, const char* text, size_t len, std::vector<uint32_t>* ids, const char* what,
                           long line, size_t base_offset) {
    size_t bad;
    if (!bpe_encode(enc, text, len, ids, &bad)) {
        if (line > 0) fail("%s:%ld: the text is not valid UTF-8", what, line);
        fail("%s: invalid UTF-8 at byte offset %zu", what, base_offset + bad);
    }
}

// ------------------------------------------------------------------------------------------------------------
// modes

static void load_encoder(BPEEncoder* enc, const std::string& gpt2_dir) {
    std::string ej = gpt2_dir + "/encoder.json", vb = gpt2_dir + "/vocab.bpe";
    if (!file_exists(ej.c_str())) fail("cannot find %s (set --gpt2-dir or SHARED_DATA)", ej.c_str());
    if (!file_exists(vb.c_str())) fail("cannot find %s (set --gpt2-dir or SHARED_DATA)", vb.c_str());
    bpe_encoder_init(enc, ej.c_str(), vb.c_str());
}

static void mode_encode(BPEEncoder* enc, const char* input) {
    std::string text = read_all(input);
    std::vector<uint32_t> ids;
    encode_or_fail(enc, text.data(), text.size(), &ids, input_name(input), 0, 0);
    std::string out;
    out.reserve(ids.size() * 6);
    char num[16];
    for (uint32_t id : ids) {
        int n = snprintf(num, sizeof(num), "%u\n", id);
        out.append(num, (size_t)n);
    }
    fwrite_or_fail(out.data(), 1, out.size(), stdout, "<stdout>");
    if (fflush(stdout) != 0) fail("could not write to stdout");
}

static void mode_decode(const char* tokenizer_path, const char* input) {
    Tokenizer tok;
    if (!tokenizer_init(&tok, tokenizer_path)) fail("tokenizer %s not found (make it with --write-tokenizer)", tokenizer_path);
    std::string text = read_all(input);
    std::string out;
    const char* p = text.c_str();
    const char* end = p + text.size();
    while (p < end) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') { p++; continue; }
        if (*p < '0' || *p > '9') fail("%s: expected token ids (non-negative integers), found '%c'", input_name(input), *p);
        unsigned long long id = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            id = id * 10 + (unsigned long long)(*p - '0');
            if (id > 0xFFFFFFFFull) break;
            p++;
        }
        if (id >= tok.vocab_size) fail("%s: token id %llu is outside the vocab (%u)", input_name(input), id, tok.vocab_size);
        out.append(tok.tokens[id]);
    }
    fwrite_or_fail(out.data(), 1, out.size(), stdout, "<stdout>");
    if (fflush(stdout) != 0) fail("could not write to stdout");
    tokenizer_free(&tok);
}

static void add_document(BPEEncoder* enc, ShardWriter* w, const char* text, size_t len, std::vector<uint32_t>* ids,
                         const char* what, long line, size_t base_offset) {
    ids->clear();
    encode_or_fail(enc, text, len, ids, what, line, base_offset);
    shard_push(w, enc->eot_token);
    for (uint32_t id : *ids) shard_push(w, id);
}

static long parse_count(const char* flag, const char* s) {
    char* endp = NULL;
    double v = strtod(s, &endp);
    if (endp == s || *endp != '\0' || !(v >= 1) || v > 2147483647.0 || v != (double)(long)v) {
        fail("%s must be a whole number between 1 and 2^31-1 (got '%s')", flag, s);
    }
    return (long)v;
}

static bool ends_with(const std::string& s, const char* suffix) {
    size_t n = strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

static void usage_error(const char* msg) {
    fail("%s (usage: tokenize --write-tokenizer OUT | --encode [FILE] | --decode [FILE] | --shards INPUT --out PREFIX; "
         "see the comment at the top of dev/data/tokenize.cpp)", msg);
}

int main(int argc, char** argv) {
    atexit(remove_tmp_files);
    const char* mode = NULL;
    const char* mode_arg = "-";
    std::string gpt2_dir;
    const char* sd = getenv("SHARED_DATA");
    gpt2_dir = (sd && sd[0]) ? std::string(sd) + "/gpt2" : std::string("../shared/data/gpt2");
    const char* tokenizer_path = "data/gpt2_tokenizer.bin";
    const char* out_prefix = NULL;
    const char* format = NULL;
    const char* docs = "whole";
    const char* field = "text";
    long shard_size = 100000000L;
    long val_tokens = -1;
    const char* split = "auto";

    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        bool has_next = i + 1 < argc;
        auto need = [&](void) -> const char* {
            if (!has_next) usage_error((a + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "--write-tokenizer" || a == "--shards") {
            if (mode) usage_error("give only one of --write-tokenizer, --encode, --decode, --shards");
            mode = argv[i];
            mode_arg = need();
        } else if (a == "--encode" || a == "--decode") {
            if (mode) usage_error("give only one of --write-tokenizer, --encode, --decode, --shards");
            mode = argv[i];
            if (has_next && (argv[i + 1][0] != '-' || strcmp(argv[i + 1], "-") == 0)) mode_arg = argv[++i];
        } else if (a == "--gpt2-dir") gpt2_dir = need();
        else if (a == "--tokenizer") tokenizer_path = need();
        else if (a == "--out") out_prefix = need();
        else if (a == "--format") format = need();
        else if (a == "--docs") docs = need();
        else if (a == "--field") field = need();
        else if (a == "--shard-size") shard_size = parse_count("--shard-size", need());
        else if (a == "--val-tokens") val_tokens = parse_count("--val-tokens", need());
        else if (a == "--split") split = need();
        else if (a == "-h" || a == "--help") {
            printf("see the comment at the top of dev/data/tokenize.cpp for usage\n");
            return 0;
        } else usage_error(("unknown argument " + a).c_str());
    }
    if (!mode) usage_error("no mode given");
    std::string m = mode;

    if (m == "--decode") { mode_decode(tokenizer_path, mode_arg); return 0; }

    if (m == "--write-tokenizer") {
        BPEEncoder enc;
        load_encoder(&enc, gpt2_dir);
        g_tmp_files.push_back(std::string(mode_arg) + ".tmp"); // removed if writing fails
        bpe_write_tokenizer_bin(&enc, mode_arg);
        g_tmp_files.clear();
        printf("wrote %s (%zu tokens, EOT %u)\n", mode_arg, enc.id_to_bytes.size(), enc.eot_token);
        return 0;
    }

    if (m == "--encode") {
        BPEEncoder enc;
        if (strcmp(mode_arg, "-") != 0 && !file_exists(mode_arg)) fail("cannot open %s for reading (no such file)", mode_arg);
        load_encoder(&enc, gpt2_dir);
        mode_encode(&enc, mode_arg);
        return 0;
    }

    // --shards
    const char* input = mode_arg;
    if (out_prefix == NULL) usage_error("--shards needs --out PREFIX");
    std::string fmt = format ? format : (ends_with(input, ".jsonl") ? "jsonl" : "txt");
    if (fmt != "txt" && fmt != "jsonl") usage_error("--format must be txt or jsonl");
    std::string docs_mode = docs;
    if (docs_mode != "whole" && docs_mode != "paragraphs") usage_error("--docs must be whole or paragraphs");
    std::string split_mode = split;
    ShardWriter w;
    w.prefix = out_prefix;
    w.index = 0;
    w.f = NULL;
    w.count = 0;
    w.total = 0;
    w.shard_size = shard_size;
    if (split_mode == "auto") w.split = SPLIT_AUTO;
    else if (split_mode == "val") w.split = SPLIT_VAL;
    else if (split_mode == "train") w.split = SPLIT_TRAIN;
    else usage_error("--split must be auto, val or train");
    if (val_tokens > 0) {
        if (split_mode != "auto") usage_error("--val-tokens and --split cannot be combined");
        w.split = SPLIT_VAL_TOKENS;
        w.shard_size = val_tokens;
    }

    FILE* in = open_input(input); // fail early on a missing input
    // fail early on an unwritable output folder: the first shard's temp file is created now
    BPEEncoder enc;
    load_encoder(&enc, gpt2_dir);
    shard_open(&w);
    double t0 = wall_seconds();
    long ndocs = 0;
    std::vector<uint32_t> ids;
    const char* name = input_name(input);

    if (fmt == "txt") {
        std::string text;
        {
            std::vector<char> buf(1 << 20);
            size_t got;
            while ((got = fread(buf.data(), 1, buf.size(), in)) > 0) text.append(buf.data(), got);
            if (ferror(in)) fail("cannot read %s", name);
        }
        if (docs_mode == "whole") {
            add_document(&enc, &w, text.data(), text.size(), &ids, name, 0, 0);
            ndocs = 1;
        } else {
            // split on "\n\n" like Python's str.split: each piece gets "\n\n" back except the last one
            size_t pos = 0;
            std::string piece;
            for (;;) {
                size_t at = text.find("\n\n", pos);
                bool last = at == std::string::npos;
                size_t end = last ? text.size() : at;
                piece.assign(text, pos, end - pos);
                if (!last) piece += "\n\n";
                add_document(&enc, &w, piece.data(), piece.size(), &ids, name, 0, pos);
                ndocs++;
                if (last) break;
                pos = at + 2;
            }
        }
    } else {
        char* line = NULL;
        size_t cap = 0;
        ssize_t got;
        long lineno = 0;
        std::string doc;
        while ((got = getline(&line, &cap, in)) != -1) {
            lineno++;
            JsonCursor c = { line, line + got, NULL };
            json_skip_ws(&c);
            if (c.p == c.end) continue; // blank line
            bool found;
            if (!json_object_get_string(&c, field, &doc, &found)) {
                if (c.err && strcmp(c.err, "the requested field is not a string") == 0) {
                    fail("%s:%ld: field \"%s\" is not a string", name, lineno, field);
                }
                fail("%s:%ld: bad JSON line (%s at column %ld)", name, lineno, c.err ? c.err : "?", (long)(c.p - line) + 1);
            }
            if (!found) fail("%s:%ld: the JSON object has no field \"%s\" (choose one with --field)", name, lineno, field);
            add_document(&enc, &w, doc.data(), doc.size(), &ids, name, lineno, 0);
            ndocs++;
        }
        if (ferror(in)) fail("cannot read %s", name);
        free(line);
        if (ndocs == 0) fail("%s has no documents", name);
    }
    if (in != stdin) fclose(in);
    if (w.split == SPLIT_VAL_TOKENS && w.total <= val_tokens) {
        fail("%s has only %lld tokens, not more than --val-tokens %ld: there would be no train tokens", name, w.total, val_tokens);
    }
    shard_finish(&w);
    double secs = wall_seconds() - t0;
    printf("%ld documents, %lld tokens, %zu shards, %.1f s\n", ndocs, w.total, w.final_paths.size(), secs);
    return 0;
}
