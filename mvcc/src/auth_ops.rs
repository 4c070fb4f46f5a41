//! Applying etcd's auth requests (`auth/store.go`'s UserAdd, RoleGrantPermission, ...): every
//! check the request can fail happens before anything changes. Admin permission is checked by
//! the member that receives the call (as etcd checks membership changes), not here.

use proto::authpb::{Permission, Role, User, UserAddOptions};
use proto::etcdserverpb::*;
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalAuthenticateRequest;

use crate::auth::{Auth, AuthError, MAX_TOKENS, ROOT};
use crate::store::{Applied, Response};
use crate::{header, Error, Store};

/// The answer to an applied auth request; headers carry only the store revision.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthResponse {
    Enable(AuthEnableResponse),
    Disable(AuthDisableResponse),
    Authenticate(AuthenticateResponse),
    UserAdd(AuthUserAddResponse),
    UserDelete(AuthUserDeleteResponse),
    UserChangePassword(AuthUserChangePasswordResponse),
    UserGrantRole(AuthUserGrantRoleResponse),
    UserRevokeRole(AuthUserRevokeRoleResponse),
    RoleAdd(AuthRoleAddResponse),
    RoleDelete(AuthRoleDeleteResponse),
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

impl Store {
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Applies an auth request; any other request is refused as empty (never sent here).
    pub(crate) fn apply_auth(&mut self, index: u64, req: &Request) -> Result<Applied, Error> {
        let h = header(self.revision);
        let resp = self.auth.apply(index, req, h).map_err(Error::Auth)?;
        Ok(self.unchanged(Response::Auth(resp)))
    }
}

impl Auth {
    fn apply(
        &mut self,
        index: u64,
        req: &Request,
        header: Option<ResponseHeader>,
    ) -> Result<AuthResponse, AuthError> {
        use AuthResponse as A;
        Ok(match req {
            Request::AuthEnable(_) => {
                self.enable()?;
                A::Enable(AuthEnableResponse { header })
            }
            Request::AuthDisable(_) => {
                if self.enabled {
                    self.enabled = false;
                    self.tokens.clear();
                    self.issued.clear();
                    self.revision += 1;
                }
                A::Disable(AuthDisableResponse { header })
            }
            Request::Authenticate(r) => {
                let token = self.authenticate(index, r)?;
                A::Authenticate(AuthenticateResponse { header, token })
            }
            Request::AuthUserAdd(r) => {
                self.user_add(r)?;
                A::UserAdd(AuthUserAddResponse { header })
            }
            Request::AuthUserDelete(r) => {
                if self.enabled && r.name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(&r.name).ok_or(AuthError::UserNotFound)?;
                self.drop_tokens_of(&r.name);
                self.revision += 1;
                A::UserDelete(AuthUserDeleteResponse { header })
            }
            Request::AuthUserChangePassword(r) => {
                let u = self.users.get_mut(&r.name).ok_or(AuthError::UserNotFound)?;
                u.password = r.hashed_password.clone().into_bytes();
                self.drop_tokens_of(&r.name);
                self.revision += 1;
                A::UserChangePassword(AuthUserChangePasswordResponse { header })
            }
            Request::AuthUserGrantRole(r) => {
                self.grant_role(&r.user, &r.role)?;
                A::UserGrantRole(AuthUserGrantRoleResponse { header })
            }
            Request::AuthUserRevokeRole(r) => {
                if self.enabled && r.name == ROOT && r.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(&r.name).ok_or(AuthError::UserNotFound)?;
                let before = u.roles.len();
                u.roles.retain(|x| *x != r.role);
                if u.roles.len() == before {
                    return Err(AuthError::RoleNotGranted);
                }
                self.revision += 1;
                A::UserRevokeRole(AuthUserRevokeRoleResponse { header })
            }
            Request::AuthRoleAdd(r) => {
                if r.name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(&r.name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                let role = Role {
                    name: r.name.clone().into_bytes(),
                    key_permission: Vec::new(),
                };
                self.roles.insert(r.name.clone(), role);
                self.revision += 1;
                A::RoleAdd(AuthRoleAddResponse { header })
            }
            Request::AuthRoleDelete(r) => {
                if self.enabled && r.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(&r.role).ok_or(AuthError::RoleNotFound)?;
                for u in self.users.values_mut() {
                    u.roles.retain(|x| *x != r.role);
                }
                self.revision += 1;
                A::RoleDelete(AuthRoleDeleteResponse { header })
            }
            Request::AuthRoleGrantPermission(r) => {
                let role = self.roles.get_mut(&r.name).ok_or(AuthError::RoleNotFound)?;
                grant(role, r.perm.clone().unwrap_or_default());
                self.revision += 1;
                A::RoleGrantPermission(AuthRoleGrantPermissionResponse { header })
            }
            Request::AuthRoleRevokePermission(r) => {
                let role = self.roles.get_mut(&r.role).ok_or(AuthError::RoleNotFound)?;
                let before = role.key_permission.len();
                role.key_permission
                    .retain(|p| p.key != r.key || p.range_end != r.range_end);
                if role.key_permission.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                self.revision += 1;
                A::RoleRevokePermission(AuthRoleRevokePermissionResponse { header })
            }
            _ => return Err(AuthError::InvalidAuthMgmt),
        })
    }

    /// etcd's AuthEnable: needs user root holding role root; enabling twice is a no-op.
    fn enable(&mut self) -> Result<(), AuthError> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
        if !root.roles.iter().any(|r| r == ROOT) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(())
    }

    fn authenticate(
        &mut self,
        index: u64,
        r: &InternalAuthenticateRequest,
    ) -> Result<String, AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let u = self.users.get(&r.name).ok_or(AuthError::AuthFailed)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(AuthError::AuthFailed);
        }
        // The password was checked against an older state: it may have changed since.
        if r.checked_revision != self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let token = format!("{}.{}", r.simple_token, index);
        self.tokens.insert(token.clone(), (r.name.clone(), index));
        self.issued.insert(index, token.clone());
        while self.issued.len() > MAX_TOKENS {
            if let Some((_, old)) = self.issued.pop_first() {
                self.tokens.remove(&old);
            }
        }
        Ok(token)
    }

    fn user_add(&mut self, r: &AuthUserAddRequest) -> Result<(), AuthError> {
        if r.name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(&r.name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let options = r.options.unwrap_or(UserAddOptions { no_password: false });
        let user = User {
            name: r.name.clone().into_bytes(),
            password: r.hashed_password.clone().into_bytes(),
            roles: Vec::new(),
            options: Some(options),
        };
        self.users.insert(r.name.clone(), user);
        self.revision += 1;
        Ok(())
    }

    /// etcd's UserGrantRole: role `root` may be granted before it exists; granting a role
    /// twice is a no-op; roles stay sorted.
    fn grant_role(&mut self, user: &str, role: &str) -> Result<(), AuthError> {
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound);
        }
        if role != ROOT && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let Some(u) = self.users.get_mut(user) else {
            return Err(AuthError::UserNotFound);
        };
        if let Err(at) = u.roles.binary_search_by(|x| x.as_str().cmp(role)) {
            u.roles.insert(at, role.to_owned());
            self.revision += 1;
        }
        Ok(())
    }

    fn drop_tokens_of(&mut self, user: &str) {
        let gone: Vec<(String, u64)> = self
            .tokens
            .iter()
            .filter(|(_, (u, _))| u == user)
            .map(|(t, (_, i))| (t.clone(), *i))
            .collect();
        for (t, i) in gone {
            self.tokens.remove(&t);
            self.issued.remove(&i);
        }
    }
}

/// etcd's RoleGrantPermission: a permission on the same key and range end is updated in
/// place, a new one is inserted in key order.
fn grant(role: &mut Role, perm: Permission) {
    if let Some(p) = role
        .key_permission
        .iter_mut()
        .find(|p| p.key == perm.key && p.range_end == perm.range_end)
    {
        p.perm_type = perm.perm_type;
        return;
    }
    let at = role.key_permission.partition_point(|p| p.key <= perm.key);
    role.key_permission.insert(at, perm);
}
