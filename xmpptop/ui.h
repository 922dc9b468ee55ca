/*
 * The interactive curses interface: meters, the sessions and presence
 * panels, the events pane, the function bar, help and the keys.
 */
#ifndef XMPPTOP_UI_H
#define XMPPTOP_UI_H

#include "source.h"
#include "view.h"

/* Run until the user quits or SIGINT/SIGTERM; returns the exit status.
 * The terminal is restored on every way out. */
int ui_run(struct top_source *s, enum view_sort sort, double delay);

#endif
