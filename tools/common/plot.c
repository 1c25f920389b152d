/* plot.c — cairo line plots (see plot.h). Layout in points: a fixed margin for labels,
 * "nice" ticks (1, 2, 5 × 10^k) on the bottom and left axes, and on request a top axis
 * whose ticks sit at x = 1/d for round values of d (resolution in Å over 1/Å). */
#include "plot.h"
#include "cryolvm/outfile.h"

#include <cairo.h>
#include <cairo-svg.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void set_msg(char *msg, size_t n, const char *fmt, ...)
{
    if (!msg || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
}

static double nice_step(double range, int want)
{
    double raw = range / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

struct frame {
    double x0, y0, w, h; /* plot area, cairo coordinates (y down) */
    double xmin, xmax, ymin, ymax;
};

static double px(const struct frame *f, double x) { return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * f->w; }
static double py(const struct frame *f, double y) { return f->y0 + f->h - (y - f->ymin) / (f->ymax - f->ymin) * f->h; }

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void fmt_num(char *b, size_t n, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6)
        dec = 6;
    snprintf(b, n, "%.*f", dec, fabs(v) < step * 1e-6 ? 0.0 : v);
}

static void draw(cairo_t *cr, const struct plot_spec *p, double W, double H)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    struct frame f = {78, p->top_label ? 74 : (p->title ? 48 : 24), 0, 0, p->xmin, p->xmax, p->ymin, p->ymax};
    f.w = W - f.x0 - 28;
    f.h = H - f.y0 - 64;

    /* title */
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (p->title) {
        cairo_set_font_size(cr, 16);
        text_at(cr, W / 2, 10, p->title, 0.5, 0);
    }
    /* grid + ticks */
    cairo_set_font_size(cr, 12);
    char b[64];
    double xs = nice_step(f.xmax - f.xmin, 7), ys = nice_step(f.ymax - f.ymin, 6);
    cairo_set_line_width(cr, 0.5);
    for (double x = ceil(f.xmin / xs - 1e-9) * xs; x <= f.xmax + xs * 1e-9; x += xs) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, px(&f, x), f.y0);
        cairo_line_to(cr, px(&f, x), f.y0 + f.h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, px(&f, x), f.y0 + f.h);
        cairo_line_to(cr, px(&f, x), f.y0 + f.h + 5);
        cairo_stroke(cr);
        fmt_num(b, sizeof b, x, xs);
        text_at(cr, px(&f, x), f.y0 + f.h + 9, b, 0.5, 0);
    }
    for (double y = ceil(f.ymin / ys - 1e-9) * ys; y <= f.ymax + ys * 1e-9; y += ys) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, f.x0, py(&f, y));
        cairo_line_to(cr, f.x0 + f.w, py(&f, y));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, f.x0 - 5, py(&f, y));
        cairo_line_to(cr, f.x0, py(&f, y));
        cairo_stroke(cr);
        fmt_num(b, sizeof b, y, ys);
        text_at(cr, f.x0 - 9, py(&f, y), b, 1, 0.5);
    }
    /* top axis in 1/x units */
    if (p->top_label) {
        static const double nice_d[] = {100, 50, 30, 20, 15, 12, 10, 8, 7, 6, 5, 4.5, 4, 3.5, 3, 2.8, 2.6, 2.5,
                                        2.4, 2.2, 2, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8};
        double last = -1e9;
        cairo_set_source_rgb(cr, 0, 0, 0);
        for (size_t i = 0; i < sizeof nice_d / sizeof *nice_d; i++) {
            double x = 1.0 / nice_d[i];
            if (x <= f.xmin || x > f.xmax || px(&f, x) - last < 34)
                continue;
            last = px(&f, x);
            cairo_move_to(cr, px(&f, x), f.y0);
            cairo_line_to(cr, px(&f, x), f.y0 - 5);
            cairo_stroke(cr);
            snprintf(b, sizeof b, "%g", nice_d[i]);
            text_at(cr, px(&f, x), f.y0 - 9, b, 0.5, 1);
        }
        cairo_set_font_size(cr, 13);
        text_at(cr, f.x0 + f.w / 2, f.y0 - 28, p->top_label, 0.5, 1);
    }
    /* axis labels */
    cairo_set_font_size(cr, 13);
    if (p->xlabel)
        text_at(cr, f.x0 + f.w / 2, f.y0 + f.h + 32, p->xlabel, 0.5, 0);
    if (p->ylabel) {
        cairo_save(cr);
        cairo_translate(cr, 20, f.y0 + f.h / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_at(cr, 0, 0, p->ylabel, 0.5, 0.5);
        cairo_restore(cr);
    }
    /* clip to the plot area for data and reference lines */
    cairo_save(cr);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_clip(cr);
    const double dash[] = {6, 4};
    cairo_set_font_size(cr, 11);
    for (size_t i = 0; i < p->nh; i++) {
        const struct plot_line *l = &p->hlines[i];
        cairo_set_source_rgb(cr, l->rgb[0], l->rgb[1], l->rgb[2]);
        cairo_set_line_width(cr, 1);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, f.x0, py(&f, l->at));
        cairo_line_to(cr, f.x0 + f.w, py(&f, l->at));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (l->label)
            text_at(cr, f.x0 + 6, py(&f, l->at) - 3, l->label, 0, 1);
    }
    for (size_t i = 0; i < p->nv; i++) {
        const struct plot_line *l = &p->vlines[i];
        if (!(l->at > f.xmin && l->at < f.xmax))
            continue;
        cairo_set_source_rgb(cr, l->rgb[0], l->rgb[1], l->rgb[2]);
        cairo_set_line_width(cr, 1);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, px(&f, l->at), f.y0);
        cairo_line_to(cr, px(&f, l->at), f.y0 + f.h);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (l->label) {
            cairo_save(cr);
            /* read upwards from the bottom of the frame, away from the legend (top right) */
            cairo_translate(cr, px(&f, l->at) - 4, f.y0 + f.h - 8);
            cairo_rotate(cr, -M_PI / 2);
            text_at(cr, 0, 0, l->label, 0, 1);
            cairo_restore(cr);
        }
    }
    for (size_t s = 0; s < p->nseries; s++) {
        const struct plot_series *ser = &p->series[s];
        cairo_set_source_rgb(cr, ser->rgb[0], ser->rgb[1], ser->rgb[2]);
        cairo_set_line_width(cr, ser->width > 0 ? ser->width : 1.5);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        if (ser->dashed)
            cairo_set_dash(cr, dash, 2, 0);
        int pen = 0;
        for (size_t i = 0; i < ser->n; i++) {
            if (!isfinite(ser->x[i]) || !isfinite(ser->y[i])) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, px(&f, ser->x[i]), py(&f, ser->y[i]));
            else
                cairo_move_to(cr, px(&f, ser->x[i]), py(&f, ser->y[i]));
            pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    cairo_restore(cr);
    /* frame */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_stroke(cr);
    /* legend, top right inside the frame */
    cairo_set_font_size(cr, 12);
    double lw = 0;
    for (size_t s = 0; s < p->nseries; s++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, p->series[s].label ? p->series[s].label : "", &e);
        lw = e.width > lw ? e.width : lw;
    }
    if (p->nseries) {
        double lx = f.x0 + f.w - lw - 52, ly = f.y0 + 10;
        cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
        cairo_rectangle(cr, lx - 6, ly - 4, lw + 52, 18.0 * (double)p->nseries + 6);
        cairo_fill(cr);
        for (size_t s = 0; s < p->nseries; s++) {
            const struct plot_series *ser = &p->series[s];
            double y = ly + 18.0 * (double)s + 7;
            cairo_set_source_rgb(cr, ser->rgb[0], ser->rgb[1], ser->rgb[2]);
            cairo_set_line_width(cr, ser->width > 0 ? ser->width : 1.5);
            if (ser->dashed)
                cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, lx, y);
            cairo_line_to(cr, lx + 30, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, lx + 38, y, ser->label ? ser->label : "", 0, 0.5);
        }
    }
}

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int length)
{
    return fwrite(data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

int plot_write(const char *path, const struct plot_spec *p, char *msg, size_t msg_size)
{
    int svg = ends_with(path, ".svg");
    if (!svg && !ends_with(path, ".png")) {
        set_msg(msg, msg_size, "%s: plot file must end in .png or .svg", path);
        return -1;
    }
    if (!(p->xmax > p->xmin) || !(p->ymax > p->ymin) || !isfinite(p->xmax - p->xmin) ||
        !isfinite(p->ymax - p->ymin)) {
        set_msg(msg, msg_size, "%s: nothing to plot (empty axis range)", path);
        return -1;
    }
    double W = p->width > 0 ? p->width : 800, H = p->height > 0 ? p->height : 560;
    /* Through libcore's one output path: cairo writes to its FILE by callback, so a plot to a
     * link, a device or /dev/stdout is treated as every other output. */
    struct cryo_error err = {0};
    struct cryo_outfile *o = NULL;
    if (cryo_outfile_open(&o, path, NULL, &err) < 0) {
        set_msg(msg, msg_size, "%s", err.msg);
        return -1;
    }
    FILE *f = cryo_outfile_file(o);
    cairo_surface_t *sf = svg ? cairo_svg_surface_create_for_stream(to_file, f, W, H)
                              : cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)(2 * W), (int)(2 * H));
    cairo_t *cr = cairo_create(sf);
    if (!svg)
        cairo_scale(cr, 2, 2); /* PNG at 2x for print */
    draw(cr, p, W, H);
    cairo_destroy(cr);
    int rc = 0;
    if (svg)
        cairo_surface_finish(sf);
    else if (cairo_surface_write_to_png_stream(sf, to_file, f) != CAIRO_STATUS_SUCCESS)
        rc = -1;
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS)
        rc = -1;
    cairo_surface_destroy(sf);
    if (rc != 0)
        set_msg(msg, msg_size, "%s: cannot write the plot: %s", path, strerror(errno ? errno : EIO));
    else if (cryo_outfile_commit(o, &err) < 0) {
        set_msg(msg, msg_size, "%s", err.msg);
        rc = -1;
    }
    cryo_outfile_free(o);
    return rc;
}

#ifdef __SANITIZE_ADDRESS__
/* cairo's toy text API leaves fontconfig's process-wide cache allocated at exit; that is
 * fontconfig's, not a leak of ours, and would fail sanitizer runs of any tool that plots. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
#endif
