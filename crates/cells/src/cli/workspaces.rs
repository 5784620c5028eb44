//! `cells admin group …`, `cells admin workspace …` and `cells admin user set-quota`: the same
//! `cells_core::workspaces` calls as REST and the console.

use clap::Subcommand;

use cells_core::SharedApp;
use cells_core::records::Grantee;
use cells_core::workspaces::{self, WorkspaceSpec};

use super::find_user;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a group
    Create { group: String },
    /// Delete a group (its members lose what it was granted)
    Delete { group: String },
    /// List groups with their members
    List,
    /// Rename a group
    Rename { group: String, new_name: String },
    /// Add a user to a group
    AddUser {
        group: String,
        #[arg(short = 'u', long = "user")]
        login: String,
    },
    /// Remove a user from a group (refused what it gave them at their next request)
    RemoveUser {
        group: String,
        #[arg(short = 'u', long = "user")]
        login: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorkspaceCommand {
    /// Create a workspace: /dav/SLUG/, S3 key prefix SLUG/, SFTP /SLUG, REST SLUG/…
    Create {
        slug: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// A size such as 10G (binary units), or none
        #[arg(long)]
        quota: Option<String>,
    },
    /// Give a user (-u) or a group (-g) rights on a workspace
    Grant {
        slug: String,
        #[arg(short = 'u', long = "user", conflicts_with_all = ["group", "everyone"])]
        login: Option<String>,
        #[arg(short = 'g', long, conflicts_with = "everyone")]
        group: Option<String>,
        /// Every user of the server
        #[arg(long)]
        everyone: bool,
        #[arg(long, default_value = "rw", value_parser = ["r", "w", "rw"])]
        rights: String,
    },
    /// End a user's (-u) or a group's (-g) grant on a workspace
    Revoke {
        slug: String,
        #[arg(short = 'u', long = "user", conflicts_with_all = ["group", "everyone"])]
        login: Option<String>,
        #[arg(short = 'g', long, conflicts_with = "everyone")]
        group: Option<String>,
        #[arg(long)]
        everyone: bool,
    },
    /// Set or remove (none) a workspace's quota
    SetQuota { slug: String, quota: String },
    /// List workspaces with their grants and quotas
    List,
    /// Delete a workspace with all its files
    Delete { slug: String },
}

pub async fn group_command(app: &SharedApp, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create { group } => {
            let group = workspaces::create_group(app, &group).await?;
            println!("Created group {} ({})", group.name, group.id);
        }
        GroupCommand::Delete { group } => {
            let found = workspaces::group(app, &group).await?;
            workspaces::delete_group(app, &found).await?;
            println!("Deleted group {group}");
        }
        GroupCommand::List => {
            let users = cells_core::users::list(app).await?;
            println!("{:<32} {:<8} MEMBERS", "GROUP", "COUNT");
            for group in workspaces::list_groups(app).await? {
                let members: Vec<&str> = users
                    .iter()
                    .filter(|u| u.groups.contains(&group.id))
                    .map(|u| u.login.as_str())
                    .collect();
                println!("{:<32} {:<8} {}", group.name, group.members, members.join(" "));
            }
        }
        GroupCommand::Rename { group, new_name } => {
            let found = workspaces::group(app, &group).await?;
            workspaces::rename_group(app, &found, &new_name).await?;
            println!("Renamed group {group} to {new_name}");
        }
        GroupCommand::AddUser { group, login } => {
            let found = workspaces::group(app, &group).await?;
            let user = find_user(app, &login).await?;
            workspaces::add_member(app, &found, &user).await?;
            println!("Added {login} to {group}");
        }
        GroupCommand::RemoveUser { group, login } => {
            let found = workspaces::group(app, &group).await?;
            let user = find_user(app, &login).await?;
            workspaces::remove_member(app, &found, &user).await?;
            println!("Removed {login} from {group}");
        }
    }
    Ok(())
}

async fn grantee(
    app: &SharedApp,
    login: Option<String>,
    group: Option<String>,
    everyone: bool,
) -> anyhow::Result<(Grantee, String)> {
    match (login, group, everyone) {
        (Some(login), None, false) => Ok((Grantee::User(find_user(app, &login).await?.id), login)),
        (None, Some(group), false) => Ok((
            Grantee::Group(workspaces::group(app, &group).await?.id),
            format!("group {group}"),
        )),
        (None, None, true) => Ok((Grantee::Everyone, "every user".into())),
        _ => anyhow::bail!("give one of -u LOGIN, -g GROUP or --everyone"),
    }
}

pub async fn workspace_command(app: &SharedApp, command: WorkspaceCommand) -> anyhow::Result<()> {
    match command {
        WorkspaceCommand::Create {
            slug,
            label,
            description,
            quota,
        } => {
            let quota = quota
                .as_deref()
                .map(workspaces::parse_quota)
                .transpose()?
                .flatten();
            let spec = WorkspaceSpec {
                slug: &slug,
                label: label.as_deref(),
                description: &description,
                quota,
            };
            let created = workspaces::create_workspace(app, spec).await?;
            println!(
                "Created workspace {} ({}); nobody may use it until it is granted",
                created.slug, created.label
            );
        }
        WorkspaceCommand::Grant {
            slug,
            login,
            group,
            everyone,
            rights,
        } => {
            let found = workspaces::workspace(app, &slug).await?;
            let (to, who) = grantee(app, login, group, everyone).await?;
            workspaces::grant(app, &found, to, workspaces::parse_rights(&rights)?).await?;
            println!("Granted {rights} on {slug} to {who}");
        }
        WorkspaceCommand::Revoke {
            slug,
            login,
            group,
            everyone,
        } => {
            let found = workspaces::workspace(app, &slug).await?;
            let (to, who) = grantee(app, login, group, everyone).await?;
            workspaces::revoke(app, &found, to).await?;
            println!("Revoked the grant of {who} on {slug}");
        }
        WorkspaceCommand::SetQuota { slug, quota } => {
            let found = workspaces::workspace(app, &slug).await?;
            let quota = workspaces::parse_quota(&quota)?;
            workspaces::set_workspace_quota(app, &found, quota).await?;
            println!("Quota of {slug}: {}", quota_text(quota));
        }
        WorkspaceCommand::List => {
            let users = cells_core::users::list(app).await?;
            let groups = workspaces::list_groups(app).await?;
            let name = |grantee: Grantee| match grantee {
                Grantee::Everyone => "everyone".to_string(),
                Grantee::User(id) => users
                    .iter()
                    .find(|u| u.id == id)
                    .map_or_else(|| id.to_string(), |u| format!("user:{}", u.login)),
                Grantee::Group(id) => groups
                    .iter()
                    .find(|g| g.id == id)
                    .map_or_else(|| id.to_string(), |g| format!("group:{}", g.name)),
            };
            println!("{:<24} {:<24} {:<10} GRANTS", "SLUG", "LABEL", "QUOTA");
            for (workspace, grants) in workspaces::list_workspaces(app).await? {
                let grants: Vec<String> = grants
                    .iter()
                    .map(|g| format!("{}={}", name(g.grantee), workspaces::rights_text(g.read, g.write)))
                    .collect();
                println!(
                    "{:<24} {:<24} {:<10} {}",
                    workspace.slug,
                    workspace.label,
                    quota_text(workspace.quota),
                    grants.join(" ")
                );
            }
        }
        WorkspaceCommand::Delete { slug } => {
            let found = workspaces::workspace(app, &slug).await?;
            workspaces::delete_workspace(app, &found).await?;
            println!("Deleted workspace {slug} with its files");
        }
    }
    Ok(())
}

/// `cells admin user set-quota -u LOGIN SIZE`.
pub async fn set_user_quota(app: &SharedApp, login: &str, quota: &str) -> anyhow::Result<()> {
    let user = find_user(app, login).await?;
    let quota = workspaces::parse_quota(quota)?;
    workspaces::set_user_quota(app, &user, quota).await?;
    println!("Quota of {login}'s personal files: {}", quota_text(quota));
    Ok(())
}

/// A quota as the CLI prints it: bytes in the largest binary unit that divides them, or none.
pub fn quota_text(quota: Option<u64>) -> String {
    let Some(bytes) = quota else {
        return "none".into();
    };
    for (unit, size) in [("T", 1u64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}
