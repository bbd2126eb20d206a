/*
 * `cleave new module NAME`: scaffolds a module that builds and passes its tests at once.
 *
 * The module is made from the templates in app/scaffold/module/ (or --templates DIR/module/):
 * every file NAME.in there becomes the same path under the tree's root without ".in", with
 * "@name@" replaced by the module's name and "@NAME@" by its upper-case form, in paths and
 * contents alike. Adding a module is a folder and its name in the module list, so the
 * command also adds the name to the top CMakeLists.txt's one-line set(CLEAVE_MODULES ...);
 * where there is no such line (an application with a list of its own) it says which line to
 * change instead. Nothing is written unless every check passes first: a bad name, an
 * existing module or any file that already exists stops it before the first file.
 */
#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host.h"

#define NAME_MAX_LEN 32
#define PATH_LEN     1024
#define MAX_FILES    64

extern char **environ;

/* What one run is making. */
typedef struct scaffold {
    const char *name;
    char upper[NAME_MAX_LEN + 1];
    const char *root;
    char templates[PATH_LEN];
    char made[MAX_FILES][PATH_LEN]; /* the files written, relative to root */
    int nmade;
    bool writing; /* false: only check that every target is free */
} scaffold;

/* C keywords (C23 included) cannot name a module: its name starts every identifier. */
static const char *const keywords[] = {
    "alignas",      "alignof",  "auto",          "bool",      "break",
    "case",         "char",     "const",         "constexpr", "continue",
    "default",      "do",       "double",        "else",      "enum",
    "extern",       "false",    "float",         "for",       "goto",
    "if",           "inline",   "int",           "long",      "nullptr",
    "register",     "restrict", "return",        "short",     "signed",
    "sizeof",       "static",   "static_assert", "struct",    "switch",
    "thread_local", "true",     "typedef",       "typeof",    "typeof_unqual",
    "union",        "unsigned", "void",          "volatile",  "while",
};

/* Says why on stderr; returns EXIT_FAILURE. */
static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int refuse(const char *fmt, ...)
{
    va_list ap;

    fputs("cleave: new module: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

/* NULL when name can name a module, else why not. */
static const char *bad_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > NAME_MAX_LEN || name[0] < 'a' || name[0] > 'z') {
        return "a module name is 1-32 characters [a-z][a-z0-9_]*";
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return "a module name is 1-32 characters [a-z][a-z0-9_]*";
        }
    }
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (strcmp(name, keywords[i]) == 0) {
            return "a C keyword cannot name a module (it starts every identifier of the module)";
        }
    }
    /* The platform's prefixes (cl_, cl__, cleave_) and its binaries (cleave-*). */
    if (strcmp(name, "cl") == 0 || strcmp(name, "cleave") == 0 || strncmp(name, "cl_", 3) == 0 ||
        strncmp(name, "cleave_", 7) == 0) {
        return "the names cl, cleave and their prefixes cl_, cleave_ belong to the platform";
    }
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)size + 1);
        }
        if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        if (buf != NULL) {
            buf[size] = '\0';
            *len = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

/* s with @name@ and @NAME@ replaced; malloc'd, NULL when out of memory. */
static char *substitute(const scaffold *s, const char *in)
{
    size_t n = strlen(s->name), cap = strlen(in) * (n + 1) + 1, o = 0;
    char *out = malloc(cap);

    if (out == NULL) {
        return NULL;
    }
    while (*in != '\0') {
        if (strncmp(in, "@name@", 6) == 0 || strncmp(in, "@NAME@", 6) == 0) {
            memcpy(out + o, in[1] == 'n' ? s->name : s->upper, n);
            o += n;
            in += 6;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
    return out;
}

/* mkdir -p of path's parent directories. */
static int make_parents(char *path)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            *p = '/';
            return -1;
        }
        *p = '/';
    }
    return 0;
}

/* Writes the template at src as rel (already substituted) under the root; O_EXCL: never over a
 * file. */
static int write_target(scaffold *s, const char *src, const char *rel)
{
    char path[PATH_LEN];
    size_t len = 0;
    char *text = NULL, *out = NULL;
    FILE *f = NULL;
    int rc = -1;
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/%s", s->root, rel) >= (int)sizeof(path)) {
        refuse("%s/%s: path too long", s->root, rel);
        return -1;
    }
    if (!s->writing) {
        if (lstat(path, &st) == 0) {
            refuse("%s exists: refusing to overwrite it (nothing was written)", path);
            return -1;
        }
        if (s->nmade >= MAX_FILES) {
            refuse("%s: more than %d templates", s->templates, MAX_FILES);
            return -1;
        }
        cl_strlcpy(s->made[s->nmade++], rel, PATH_LEN);
        return 0;
    }
    text = read_file(src, &len);
    out = text != NULL ? substitute(s, text) : NULL;
    if (out == NULL) {
        refuse("cannot read %s: %s", src, strerror(errno));
        goto out;
    }
    if (make_parents(path) != 0) {
        refuse("cannot create the folders of %s: %s", path, strerror(errno));
        goto out;
    }
    /* "x": a file that appeared since the check is not overwritten either. */
    f = fopen(path, "wx");
    if (f == NULL || fputs(out, f) == EOF) {
        refuse("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        rc = refuse("cannot write %s: %s", path, strerror(errno));
    }
    free(text);
    free(out);
    return rc;
}

/* Every *.in under dir (rel: its path under the templates, "" at the top), in name order. */
static int walk(scaffold *s, const char *dir, const char *rel)
{
    struct dirent **entries = NULL;
    int n = scandir(dir, &entries, NULL, alphasort);
    int rc = 0;

    if (n < 0) {
        return refuse("cannot read the templates %s: %s", dir, strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        const char *e = entries[i]->d_name;
        char src[PATH_LEN], sub[PATH_LEN], *target = NULL;
        size_t len = strlen(e);
        struct stat st;

        if (rc != 0 || strcmp(e, ".") == 0 || strcmp(e, "..") == 0) {
            continue;
        }
        snprintf(src, sizeof(src), "%s/%s", dir, e);
        snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] != '\0' ? "/" : "", e);
        if (stat(src, &st) != 0) {
            rc = refuse("cannot read %s: %s", src, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(s, src, sub);
        } else if (len > 3 && strcmp(e + len - 3, ".in") == 0) {
            sub[strlen(sub) - 3] = '\0';
            target = substitute(s, sub);
            rc = target != NULL ? write_target(s, src, target) : -1;
            free(target);
        }
    }
    for (int i = 0; i < n; i++) {
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/*
 * Finds the top CMakeLists.txt's one-line set(CLEAVE_MODULES a b c): *close points into
 * text at its ')'. Returns 1 when found, 0 when not (no such line, more than one, or one
 * spread over lines), and -1 when name is listed there already.
 */
static int find_module_list(const char *name, char *text, char **close)
{
    static const char key[] = "set(CLEAVE_MODULES";
    size_t klen = sizeof(key) - 1;
    int found = 0;
    char *p = text;

    while (p != NULL && *p != '\0') {
        char *q = p + strspn(p, " \t");
        char *end;

        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
        if (strncmp(q, key, klen) != 0 || (q[klen] != ' ' && q[klen] != ')')) {
            continue;
        }
        end = strpbrk(q, ")\n");
        if (end == NULL || *end != ')') {
            return 0;
        }
        *close = end;
        found++;
        for (char *w = q + klen; w < end;) {
            size_t n = strcspn(w, " \t)");
            if (n == strlen(name) && strncmp(w, name, n) == 0) {
                return -1;
            }
            w += n > 0 ? n : 1;
        }
    }
    return found == 1 ? 1 : 0;
}

/* Adds name to the module list in root/CMakeLists.txt, through a renamed temporary file. */
static int add_to_module_list(const scaffold *s, char *text, size_t len, char *close)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "%s/CMakeLists.txt", s->root);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "wx");
    if (f == NULL) {
        return refuse("cannot write %s: %s", tmp, strerror(errno));
    }
    ok = fwrite(text, 1, (size_t)(close - text), f) == (size_t)(close - text) &&
         fprintf(f, " %s", s->name) > 0 &&
         fwrite(close, 1, len - (size_t)(close - text), f) == len - (size_t)(close - text);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return refuse("cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* clang-format -i over the new C files when it is installed: names change line lengths. */
static void format_sources(const scaffold *s)
{
    char *argv[MAX_FILES + 3];
    char paths[MAX_FILES][PATH_LEN];
    int argc = 0, status = 0;
    pid_t pid;

    argv[argc++] = "clang-format";
    argv[argc++] = "-i";
    for (int i = 0; i < s->nmade; i++) {
        size_t n = strlen(s->made[i]);
        if (n > 2 &&
            (strcmp(s->made[i] + n - 2, ".c") == 0 || strcmp(s->made[i] + n - 2, ".h") == 0)) {
            if (snprintf(paths[argc], sizeof(paths[argc]), "%s/%s", s->root, s->made[i]) >=
                (int)sizeof(paths[argc])) {
                continue;
            }
            argv[argc] = paths[argc];
            argc++;
        }
    }
    argv[argc] = NULL;
    if (posix_spawnp(&pid, "clang-format", NULL, NULL, argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("note: clang-format did not run; format the new .c and .h files before "
               "committing\n");
    }
}

static int usage_error(void)
{
    fprintf(stderr, "cleave: new: usage: new module NAME [--templates DIR] [--root DIR]\n");
    return 2;
}

int cleave_new(int argc, char **argv)
{
    scaffold s = {.root = ".", .writing = false};
    const char *templates = CLEAVE_SCAFFOLD_DIR;
    const char *why;
    char path[PATH_LEN];
    char *cmake = NULL, *close = NULL;
    size_t cmake_len = 0;
    int listed = 0, rc = EXIT_FAILURE;
    struct stat st;

    if (argc < 2 || strcmp(argv[0], "module") != 0) {
        return usage_error();
    }
    s.name = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--templates") == 0 && i + 1 < argc) {
            templates = argv[++i];
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            s.root = argv[++i];
        } else {
            fprintf(stderr, "cleave: new module: unknown option %s\n", argv[i]);
            return usage_error();
        }
    }
    why = bad_name(s.name);
    if (why != NULL) {
        return refuse("'%s' cannot name a module: %s", s.name, why);
    }
    for (size_t i = 0; i <= strlen(s.name); i++) {
        s.upper[i] =
            (char)(s.name[i] >= 'a' && s.name[i] <= 'z' ? s.name[i] - 'a' + 'A' : s.name[i]);
    }
    snprintf(s.templates, sizeof(s.templates), "%s/module", templates);
    snprintf(path, sizeof(path), "%s/modules/%s", s.root, s.name);
    if (stat(path, &st) == 0) {
        return refuse("module '%s' exists already (%s)", s.name, path);
    }
    snprintf(path, sizeof(path), "%s/migrations/%s", s.root, s.name);
    if (stat(path, &st) == 0) {
        return refuse("module '%s' has migrations already (%s)", s.name, path);
    }
    snprintf(path, sizeof(path), "%s/CMakeLists.txt", s.root);
    cmake = read_file(path, &cmake_len);
    if (cmake == NULL) {
        return refuse("%s: %s (run it at the root of the tree, or give --root DIR)", path,
                      strerror(errno));
    }
    listed = find_module_list(s.name, cmake, &close);
    if (listed < 0) {
        refuse("module '%s' exists already: %s lists it", s.name, path);
        goto out;
    }
    /* First every check, then the writing: a refusal leaves the tree as it was. */
    if (walk(&s, s.templates, "") != 0) {
        goto out;
    }
    if (s.nmade == 0) {
        refuse("no templates (*.in) in %s", s.templates);
        goto out;
    }
    s.writing = true;
    if (walk(&s, s.templates, "") != 0) {
        goto out;
    }
    for (int i = 0; i < s.nmade; i++) {
        printf("created %s\n", s.made[i]);
    }
    format_sources(&s);
    if (listed == 1) {
        if (add_to_module_list(&s, cmake, cmake_len, close) != 0) {
            goto out;
        }
        printf("added %s to set(CLEAVE_MODULES ...) in CMakeLists.txt\n", s.name);
    } else {
        printf("now add %s to your list of modules (in this tree: set(CLEAVE_MODULES ... %s) in "
               "CMakeLists.txt)\n",
               s.name, s.name);
    }
    rc = EXIT_SUCCESS;
out:
    free(cmake);
    return rc;
}
