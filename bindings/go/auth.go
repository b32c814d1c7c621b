package streamhub

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

func authResult(op string, a *C.sh_auth_t) (*Auth, error) {
	defer C.sh_auth_free(a)
	var n C.size_t
	var out Auth
	if err := decode(op, C.sh_auth_json(a, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Register creates a user with the VIEWER role and logs them in.  Slow on
// purpose (one Argon2id hash).  Errors: ErrInvalid (the message names the
// field), ErrConflict (username or email taken).
func (w *Hub) Register(ctx context.Context, username, email,
	password string) (*Auth, error) {
	const op = "Register"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cu, ce, cp := cs.str(username), cs.str(email), cs.str(password)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var a *C.sh_auth_t
	var eb errbuf
	if rc := C.sh_auth_register(c, cu, ce, cp, &a, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return authResult(op, a)
}

// Login logs a user in.  An unknown user and a wrong password are the
// same ErrUnauthenticated.
func (w *Hub) Login(ctx context.Context, username,
	password string) (*Auth, error) {
	const op = "Login"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cu, cp := cs.str(username), cs.str(password)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var a *C.sh_auth_t
	var eb errbuf
	if rc := C.sh_auth_login(c, cu, cp, &a, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return authResult(op, a)
}

// Refresh spends a refresh token for a new pair (single use: presenting
// a spent one revokes its whole family).
func (w *Hub) Refresh(ctx context.Context, refreshToken string) (*Auth,
	error) {
	const op = "Refresh"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ct := cs.str(refreshToken)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var a *C.sh_auth_t
	var eb errbuf
	if rc := C.sh_auth_refresh(c, ct, &a, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return authResult(op, a)
}

// Revoke logs out: revokes refreshToken and its whole family.
func (w *Hub) Revoke(ctx context.Context, refreshToken string) error {
	const op = "Revoke"
	c, err := w.enter(ctx, op)
	if err != nil {
		return err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ct := cs.str(refreshToken)
	if err := cs.check(op); err != nil {
		return err
	}
	var eb errbuf
	if rc := C.sh_auth_revoke(c, ct, eb.ptr(), eb.size()); rc != C.SH_OK {
		return newError(op, rc, eb.String())
	}
	return nil
}

// Verify checks an access token (signature, algorithm, expiry) and says
// whom it names.  Every bad token is the same ErrUnauthenticated.
func (w *Hub) Verify(ctx context.Context, token string) (*Principal,
	error) {
	const op = "Verify"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var p *C.sh_principal_t
	// Length-delimited: a NUL byte inside goes through, to be refused.
	pt := C.CString(token)
	defer C.free(unsafe.Pointer(pt))
	if rc := C.sh_auth_verify(c, pt, C.size_t(len(token)),
		&p); rc != C.SH_OK {
		return nil, newError(op, rc, "")
	}
	defer C.sh_principal_free(p)
	return &Principal{
		UserID:   goStr(C.sh_principal_user_id(p)),
		Username: goStr(C.sh_principal_username(p)),
		Roles:    Role(C.sh_principal_roles(p)),
		Expires:  time.Unix(int64(C.sh_principal_exp(p)), 0).UTC(),
	}, nil
}

func userResult(op string, u *C.sh_user_t) (*User, error) {
	defer C.sh_user_free(u)
	var n C.size_t
	var out User
	if err := decode(op, C.sh_user_json(u, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// User looks a user up by id.  viewerID is the caller's user id, or "":
// the email is only filled when viewerID is userID.
func (w *Hub) User(ctx context.Context, viewerID, userID string) (*User,
	error) {
	const op = "User"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cv, cu := cs.opt(viewerID), cs.str(userID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var u *C.sh_user_t
	var eb errbuf
	if rc := C.sh_user_get(c, cv, cu, &u, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return userResult(op, u)
}

// UserByUsername looks a user up by username, in any ASCII case.
func (w *Hub) UserByUsername(ctx context.Context, viewerID,
	username string) (*User, error) {
	const op = "UserByUsername"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cv, cu := cs.opt(viewerID), cs.str(username)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var u *C.sh_user_t
	var eb errbuf
	if rc := C.sh_user_get_by_username(c, cv, cu, &u, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return userResult(op, u)
}
