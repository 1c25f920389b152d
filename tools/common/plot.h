/* plot.h — line plots to PNG or SVG (by the file's extension) with cairo, for the figures
 * tools write (FSC curves, histograms). A figure a person would put in a paper: white
 * background, framed axes with ticks and labels, a legend, optional reference lines, and
 * optionally a second x axis on top labelled in 1/x (Å over a 1/Å axis).
 * The file is written to a temporary name in the same directory and renamed into place,
 * so a failed plot leaves nothing behind. Not part of libcore: tools only.
 */
#ifndef CRYOLVM_PLOT_H
#define CRYOLVM_PLOT_H

#include <stddef.h>

struct plot_series {
    const char *label;
    const double *x, *y; /* n points; non-finite y values break the line */
    size_t n;
    double rgb[3];
    double width;        /* line width in points (0 = 1.5) */
    int dashed;
};

struct plot_line {       /* a horizontal (y) or vertical (x) reference line */
    double at;
    const char *label;   /* may be NULL */
    double rgb[3];
};

struct plot_spec {
    const char *title;           /* may be NULL */
    const char *xlabel, *ylabel;
    const char *top_label;       /* non-NULL: top axis ticks at 1/x, labelled in these units */
    double xmin, xmax, ymin, ymax;
    const struct plot_series *series;
    size_t nseries;
    const struct plot_line *hlines, *vlines;
    size_t nh, nv;
    int width, height;           /* pixels / points; 0 = 800 x 560 */
};

/* 0 on success; on failure -1 and a one-line reason in msg. .png or .svg only. */
int plot_write(const char *path, const struct plot_spec *p, char *msg, size_t msg_size);

#endif
